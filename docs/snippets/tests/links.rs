//! Every relative link in the README, docs/*.md, the crates' READMEs and
//! the crates' rustdoc points at a file inside this repository that exists:
//! no link to a sibling checkout, a home directory or a file since deleted.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The targets of `[text](target)` links in `text`.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            found.push(rest[..end].to_owned());
        }
    }
    found
}

/// `files_only`: rustdoc, where `[x](Self::y)` is an intra-doc link, not a
/// file: only targets with a `/` or a file extension are files there.
fn check(file: &Path, text: &str, root: &Path, files_only: bool, broken: &mut Vec<String>) {
    for link in links(text) {
        let target = link.split('#').next().unwrap_or_default();
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        if files_only && (target.contains("::") || !(target.contains('/') || target.contains('.')))
        {
            continue;
        }
        let resolved = file.parent().unwrap().join(target);
        match resolved.canonicalize() {
            Ok(path) if path.starts_with(root) => {}
            Ok(_) => broken.push(format!(
                "{}: {link} is outside the repository",
                file.display()
            )),
            Err(_) => broken.push(format!("{}: {link} does not exist", file.display())),
        }
    }
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() && name != "node_modules" && name != "target" {
            files(&path, ext, out);
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

#[test]
fn relative_links_stay_inside_the_repository_and_resolve() {
    let root = root();
    let mut markdown = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    files(&root.join("docs"), ".md", &mut markdown);
    files(&root.join("crates"), ".md", &mut markdown);
    files(&root.join("examples"), ".md", &mut markdown);
    let mut broken = Vec::new();
    for file in &markdown {
        check(
            file,
            &std::fs::read_to_string(file).unwrap(),
            &root,
            false,
            &mut broken,
        );
    }
    let mut sources = Vec::new();
    files(&root.join("crates"), ".rs", &mut sources);
    for file in sources
        .iter()
        .filter(|f| f.to_string_lossy().contains("/src/"))
    {
        let doc: String = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("//!") || l.starts_with("///"))
            .collect::<Vec<_>>()
            .join("\n");
        check(file, &doc, &root, true, &mut broken);
    }
    assert!(markdown.len() > 8, "the scan found the documentation");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_finder_finds_links() {
    assert_eq!(
        links("see [a](docs/a.md#x) and [b](https://x)"),
        ["docs/a.md#x", "https://x"]
    );
}
