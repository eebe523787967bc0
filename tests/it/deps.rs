//! A fresh machine gets every command the tests run: each external command
//! that the test sources (tests/it, tests/js) and scripts/test.sh start must
//! be installed by name by scripts/deps.sh (`need_apt <command> <package>`).
//! Read from the sources, so nothing is uninstalled to check it.

use std::collections::BTreeSet;
use std::path::Path;

/// Present on any machine that can build the project at all.
const BASE: &[&str] = &["sh", "cargo"];

/// Shell words that are not commands to install.
const SHELL: &[&str] = &[
    "set", "cd", "if", "then", "else", "fi", "echo", "exit", "source", "for", "do", "done", "trap",
    "local", "return",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The string literal right after each occurrence of `marker`.
fn literals_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// Commands a test source starts: `Command::new("x")`, JS `spawn("x"`,
/// `execFileSync("x"`, `which("x"`, and absolute `/usr/bin/x` style paths.
fn spawned(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for marker in ["Command::new(\"", "spawn(\"", "execFileSync(\"", "which(\""] {
        found.extend(literals_after(text, marker).into_iter().map(str::to_string));
    }
    for dir in [
        "\"/usr/bin/",
        "\"/usr/sbin/",
        "\"/usr/local/bin/",
        "\"/usr/local/sbin/",
    ] {
        found.extend(literals_after(text, dir).into_iter().map(str::to_string));
    }
    found
}

/// The first word of each command line of a shell script, but the
/// script's own functions (`name() {`).
fn script_commands(text: &str) -> BTreeSet<String> {
    let functions: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_suffix("() {"))
        .collect();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .filter(|w| !SHELL.contains(w) && !functions.contains(w))
        .map(str::to_string)
        .collect()
}

fn sources() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for (dir, ext) in [("tests/it", "rs"), ("tests/js", "mjs")] {
        for e in std::fs::read_dir(root().join(dir)).expect(dir) {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == ext) {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn deps_sh_installs_every_command_the_tests_run() {
    let mut needed = BTreeSet::new();
    for f in sources() {
        // This file names markers, not commands.
        if f.ends_with("deps.rs") {
            continue;
        }
        needed.extend(spawned(&std::fs::read_to_string(&f).expect("read")));
    }
    let test_sh = std::fs::read_to_string(root().join("scripts/test.sh")).expect("test.sh");
    needed.extend(script_commands(&test_sh));
    for b in BASE {
        needed.remove(*b);
    }
    // The scan itself works: these are spawned today.
    for known in [
        "mosquitto",
        "mosquitto_pub",
        "mosquitto_sub",
        "openssl",
        "node",
        "chromium",
    ] {
        assert!(needed.contains(known), "scan missed {known}: {needed:?}");
    }

    let deps = std::fs::read_to_string(root().join("scripts/deps.sh")).expect("deps.sh");
    let installed: BTreeSet<&str> = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("need_apt "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let missing: Vec<&String> = needed
        .iter()
        .filter(|c| !installed.contains(c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "scripts/deps.sh has no `need_apt <command> <package>` for {missing:?}"
    );
}

#[test]
fn the_scan_finds_commands_in_each_form() {
    let rust = r#"let o = Command::new("openssl").arg("x"); Command::new(env!("X"));"#;
    let js = r#"const A = which("mosquitto", SBIN); spawn("stdbuf", []); execFileSync("sh", []);
                const C = process.env.C || "/usr/bin/chromium";"#;
    let got: Vec<String> = spawned(rust).into_iter().chain(spawned(js)).collect();
    assert_eq!(got, ["openssl", "chromium", "mosquitto", "sh", "stdbuf"]);
    let sh =
        "set -e\nif ! command -v cargo; then\n  echo x\nfi\ncargo test \"$@\"\n  node --test x\n";
    assert_eq!(
        script_commands(sh).into_iter().collect::<Vec<_>>(),
        ["cargo", "node"]
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The container build (deploy/Dockerfile) copies only some of the tree
/// into its context; every file the server's code includes at compile time
/// (`include_str!`/`include_bytes!` with a literal path, outside test
/// modules) must be among them, or the image does not build.
#[test]
fn the_container_build_has_every_file_the_compiler_reads() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    assert!(copied.contains(&"src"), "{copied:?}");
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Test modules are not built in the image.
        let built = text.split("#[cfg(test)]").next().unwrap();
        for marker in ["include_str!(\"", "include_bytes!(\""] {
            for lit in literals_after(built, marker) {
                let full = f.parent().unwrap().join(lit);
                let full = full
                    .canonicalize()
                    .unwrap_or_else(|_| panic!("{}: {lit}", f.display()));
                let rel = full.strip_prefix(root().canonicalize().unwrap()).unwrap();
                let first = rel
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_str()
                    .unwrap();
                assert!(
                    copied.contains(&first),
                    "{} includes {}, which deploy/Dockerfile does not copy ({copied:?})",
                    f.display(),
                    rel.display()
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0,
        "no compile-time include found: the scan is broken"
    );
}
