//! The README's help section is what `--help` prints: this test fails when they drift,
//! and with `UPDATE_README=1` rewrites the section from the binary.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fcgi");

/// The README with each `<!-- help: fcgi ... -->` block holding that command's output.
fn with_help(readme: &str) -> String {
    let mut out = String::new();
    let mut rest = readme;
    while let Some(start) = rest.find("<!-- help: ") {
        let line_end = start + rest[start..].find('\n').expect("a marker line ends");
        let marker = &rest[start..line_end];
        let command = marker
            .strip_prefix("<!-- help: ")
            .and_then(|m| m.strip_suffix(" -->"))
            .expect("<!-- help: COMMAND -->");
        let end = line_end
            + rest[line_end..]
                .find("<!-- end help -->")
                .expect("every help block has an end marker");
        let args: Vec<&str> = command.split(' ').skip(1).collect();
        let output = Command::new(BIN).args(&args).output().expect("fcgi runs");
        assert_eq!(output.status.code(), Some(0), "{command}");
        let help = String::from_utf8(output.stdout).expect("help is text");
        out.push_str(&rest[..=line_end]);
        out.push_str(&format!("```text\n$ {command}\n{help}```\n"));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn readme_help_matches_the_binary() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    let expected = with_help(&readme);
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(path, &expected).expect("write README.md");
        return;
    }
    assert!(
        readme == expected,
        "README.md's help section is not what --help prints: run \
         UPDATE_README=1 cargo test -p fcgi-cli --test readme"
    );
}
