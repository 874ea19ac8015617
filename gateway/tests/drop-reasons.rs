//! Every drop reason the daemon counts is one `/metrics` knows: an unknown
//! one is a debug assertion (a panic in tests and debug builds) and is lost
//! from the exposition.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_counted_drop_reason_is_declared() {
    let src = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut used = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for part in text.split("count_drop(\"").skip(1) {
            let reason = part.split('"').next().unwrap();
            used.push((reason.to_string(), f.display().to_string()));
        }
    }
    assert!(used.len() >= 5, "the scan finds the daemon's drop counts: {used:?}");
    let unknown: Vec<_> = used
        .iter()
        .filter(|(r, _)| !confgate::metrics::DROP_REASONS.contains(&r.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "drop reasons missing from DROP_REASONS: {unknown:?}"
    );
}
