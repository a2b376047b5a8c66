//! Settings from the environment, with a `KEY=VALUE` file beneath it.

use std::collections::HashMap;
use std::path::Path;

use mcp_auth_core::{ConfigProblem, ConfigProblems};

/// The settings a server reads: the process environment wins over the
/// file. Empty values count as unset. Values are never printed by
/// `Debug` (they hold secrets).
#[derive(Clone, Default)]
pub struct Settings {
    values: HashMap<String, String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.values.keys().collect();
        names.sort();
        f.debug_struct("Settings").field("set", &names).finish()
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value)
}

impl Settings {
    /// The process environment over `file` (if given) for the names in
    /// `names`. A file that cannot be read is a problem naming it.
    pub fn load<N: AsRef<str>>(names: &[N], file: Option<&Path>) -> Result<Self, ConfigProblems> {
        let contents = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                ConfigProblems::from(ConfigProblem::new(
                    path.display().to_string(),
                    format!("cannot be read: {}", e.kind()),
                ))
            })?),
            None => None,
        };
        Self::from_sources(names, |k| std::env::var(k).ok(), contents.as_deref())
    }

    /// The same from an explicit lookup and file text (tests, other
    /// configuration systems). A file line that is not `KEY=VALUE`, or
    /// names a variable not in `names`, is a problem (a typo would
    /// otherwise be silently ignored).
    pub fn from_sources<N: AsRef<str>>(
        names: &[N],
        env: impl Fn(&str) -> Option<String>,
        file: Option<&str>,
    ) -> Result<Self, ConfigProblems> {
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        let mut problems = ConfigProblems::new();
        let mut from_file = HashMap::new();
        for (n, line) in file.unwrap_or("").lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            match line.split_once('=') {
                Some((k, v)) if names.contains(&k.trim()) => {
                    from_file.insert(k.trim().to_owned(), unquote(v.trim()).to_owned());
                }
                Some((k, _)) => problems.push(ConfigProblem::new(
                    format!("line {}", n + 1),
                    format!(
                        "{} is not a setting of this server (known: {})",
                        k.trim(),
                        names.join(", ")
                    ),
                )),
                None => problems.push(ConfigProblem::new(
                    format!("line {}", n + 1),
                    "not KEY=VALUE",
                )),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut values = HashMap::new();
        for name in &names {
            let value = env(name)
                .filter(|v| !v.trim().is_empty())
                .or_else(|| from_file.remove(*name).filter(|v| !v.trim().is_empty()));
            if let Some(value) = value {
                values.insert((*name).to_owned(), value);
            }
        }
        Ok(Self { values })
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether `name` is set.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["A_ID", "A_SECRET", "PORT"];

    #[test]
    fn environment_wins_and_the_file_fills_in() {
        let file = "# comment\nA_ID=from-file\nexport A_SECRET=\"s3cret\"\n\nPORT=''\n";
        let env = |k: &str| (k == "A_ID").then(|| "from-env".to_owned());
        let s = Settings::from_sources(NAMES, env, Some(file)).unwrap();
        assert_eq!(s.get("A_ID"), Some("from-env"));
        assert_eq!(s.get("A_SECRET"), Some("s3cret"));
        assert_eq!(s.get("PORT"), None, "empty is unset");
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let err =
            Settings::from_sources(NAMES, |_| None, Some("A_IDD=x\nnonsense\nA_ID=y")).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(
            err.0[0]
                .to_string()
                .starts_with("line 1: A_IDD is not a setting")
        );
        assert!(err.0[1].to_string().starts_with("line 2: not KEY=VALUE"));
    }
}
