//! The house-style checker (style.md S23, after TigerBeetle's `tidy.zig`).
//!
//! It reads every Rust file under `src/`, `loadgen/src/`, `benches/`, `tests/` and `fuzz/`
//! and fails on a banned pattern, naming the file, the line and the replacement:
//!
//! 1. Lines longer than 100 columns (rustfmt does not wrap comments or strings); a line
//!    holding a link is exempt.
//! 2. `unwrap()` in library code outside `#[cfg(test)]`: return an error, or `expect` a
//!    proven invariant with a message that says why it holds.
//! 3. `anyhow` in `src/` outside the binaries: library errors are typed (S14).
//! 4. A clock read in sans-IO code (`src/wire`, `src/server`, `src/requestor`): take `now`
//!    as an argument (S11).
//! 5. `unsafe` outside `src/net` and `src/store`, and any `unsafe` without a `SAFETY:`
//!    comment on one of the three lines above it (S6).
//! 6. `FIXME`, `todo!`, `unimplemented!`, `dbg!`: unfinished work does not land.

use std::fs;
use std::path::{Path, PathBuf};

const LINE_COLUMNS_MAX: usize = 100;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "corpus" || name == "artifacts" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library part of a source file: everything before its `#[cfg(test)]` module.
fn library_part(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("//")
}

struct Finding {
    file: String,
    line: usize,
    what: &'static str,
}

fn check_file(root: &Path, path: &Path, findings: &mut Vec<Finding>) {
    let text = fs::read_to_string(path).expect("source files are UTF-8");
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let in_src = rel.starts_with("src/");
    let is_binary = rel == "src/main.rs" || rel.starts_with("src/bin/");
    let sans_io = ["src/wire/", "src/server/", "src/requestor/"]
        .iter()
        .any(|p| rel.starts_with(p));
    let unsafe_allowed = rel.starts_with("src/net/") || rel.starts_with("src/store/");
    let library_lines = library_part(&text).lines().count();
    let lines: Vec<&str> = text.lines().collect();
    let mut push = |line: usize, what| {
        findings.push(Finding {
            file: rel.clone(),
            line,
            what,
        })
    };
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        // A link cannot be wrapped; everything else can.
        if line.chars().count() > LINE_COLUMNS_MAX && !line.contains("https://") {
            push(n, "line longer than 100 columns");
        }
        for banned in ["FIXME", "todo!(", "unimplemented!(", "dbg!("] {
            if line.contains(banned) && !rel.ends_with("tests/tidy.rs") {
                push(
                    n,
                    "unfinished-work marker (FIXME, todo!, unimplemented!, dbg!)",
                );
            }
        }
        let code = !is_comment(line);
        let library = in_src && i < library_lines && code;
        if library && !is_binary && line.contains(".unwrap()") {
            push(
                n,
                "unwrap() in library code: return an error or expect() with the reason",
            );
        }
        if library && !is_binary && line.contains("anyhow") {
            push(
                n,
                "anyhow in library code: use the layer's typed error (S14)",
            );
        }
        if sans_io && code && (line.contains("Instant::now") || line.contains("SystemTime::now")) {
            push(
                n,
                "clock read in sans-IO code: take `now` as an argument (S11)",
            );
        }
        if code && contains_unsafe_keyword(line) && !rel.ends_with("tests/tidy.rs") {
            if in_src && !unsafe_allowed {
                push(n, "unsafe outside src/net and src/store (S6)");
            }
            let above = &lines[i.saturating_sub(3)..i];
            if !above.iter().any(|l| l.contains("SAFETY:")) && !line.contains("SAFETY:") {
                push(n, "unsafe without a SAFETY: comment just above it");
            }
        }
    }
}

fn contains_unsafe_keyword(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    ["unsafe {", "unsafe fn", "unsafe impl", "unsafe trait"]
        .iter()
        .any(|k| code.contains(k))
}

#[test]
fn tidy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "src",
        "loadgen/src",
        "benches",
        "tests",
        "fuzz/fuzz_targets",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() >= 10,
        "tidy found only {} files: wrong root?",
        files.len()
    );
    let mut findings = Vec::new();
    for path in &files {
        check_file(root, path, &mut findings);
    }
    let report: Vec<String> = findings
        .iter()
        .map(|f| format!("{}:{}: {}", f.file, f.line, f.what))
        .collect();
    assert!(
        report.is_empty(),
        "tidy found {} problems:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn tidy_catches_what_it_bans() {
    // A checker that cannot fail is no checker: feed it a file with each banned pattern.
    let dir = std::env::temp_dir().join(format!("lqd-tidy-{}", std::process::id()));
    let src = dir.join("src/wire");
    fs::create_dir_all(&src).expect("temp dir");
    let bad = "fn f() {\n    let x = y.unwrap();\n    let t = Instant::now();\n    \
               unsafe { g() }\n    dbg!(x);\n}\n";
    fs::write(src.join("bad.rs"), bad).expect("write");
    let mut findings = Vec::new();
    check_file(&dir, &src.join("bad.rs"), &mut findings);
    fs::remove_dir_all(&dir).expect("cleanup");
    let whats: Vec<&str> = findings.iter().map(|f| f.what).collect();
    assert!(whats.iter().any(|w| w.starts_with("unwrap()")), "{whats:?}");
    assert!(
        whats.iter().any(|w| w.starts_with("clock read")),
        "{whats:?}"
    );
    assert!(
        whats.iter().any(|w| w.starts_with("unsafe outside")),
        "{whats:?}"
    );
    assert!(
        whats.iter().any(|w| w.starts_with("unsafe without")),
        "{whats:?}"
    );
    assert!(
        whats.iter().any(|w| w.starts_with("unfinished")),
        "{whats:?}"
    );
}
