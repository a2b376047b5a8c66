//! One shape for configuration errors: which setting, and why.

use std::borrow::Cow;

/// A setting that cannot work: which one, and why. Every crate's error
/// enum carries configuration errors in this one shape (its `Config`
/// variant), so an application can report them alike.
///
/// ```
/// use mcp_auth_core::ConfigProblem;
/// let problem = ConfigProblem::new("issuer", "must be https (http only on loopback)");
/// assert_eq!(problem.setting(), "issuer");
/// assert_eq!(problem.to_string(), "issuer: must be https (http only on loopback)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct ConfigProblem {
    setting: Cow<'static, str>,
    reason: Cow<'static, str>,
}

impl ConfigProblem {
    /// `setting` cannot work, for `reason`. Neither may hold a secret.
    pub fn new(
        setting: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    /// The setting (a builder method, a field, an environment variable).
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Every problem of a configuration, found at once (an operator fixes them
/// in one go). `Display` lists one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigProblems(pub Vec<ConfigProblem>);

impl ConfigProblems {
    /// No problem yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn push(&mut self, problem: ConfigProblem) {
        self.0.push(problem);
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigProblem> {
        self.0.iter()
    }

    /// Whether one of them is about `setting`.
    pub fn names(&self, setting: &str) -> bool {
        self.0.iter().any(|p| p.setting() == setting)
    }
}

impl From<ConfigProblem> for ConfigProblems {
    fn from(problem: ConfigProblem) -> Self {
        Self(vec![problem])
    }
}

impl std::fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigProblems {}

impl IntoIterator for ConfigProblems {
    type Item = ConfigProblem;
    type IntoIter = std::vec::IntoIter<ConfigProblem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Extend<ConfigProblem> for ConfigProblems {
    fn extend<T: IntoIterator<Item = ConfigProblem>>(&mut self, iter: T) {
        self.0.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_on_its_own_line_naming_its_setting() {
        let mut problems = ConfigProblems::new();
        assert!(problems.is_empty());
        problems.push(ConfigProblem::new("A_URL", "is not a URL"));
        problems.extend([ConfigProblem::new("B_KEY", format!("has {} bytes", 3))]);
        assert_eq!(
            problems.to_string(),
            "  - A_URL: is not a URL\n  - B_KEY: has 3 bytes"
        );
        assert!(problems.names("B_KEY") && !problems.names("C"));
        assert_eq!(problems.iter().count(), 2);
    }
}
