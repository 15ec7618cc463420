//! The line protocols on standard input/output, for soaks and ad-hoc comparison: `pattern_lines validate|match`.
fn main() -> std::io::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let (stdin, stdout) = (std::io::stdin().lock(), std::io::stdout().lock());
    match mode.as_str() {
        "validate" => anyam_pattern::lines::validate_lines(stdin, stdout).map(|_| ()),
        "match" => anyam_pattern::lines::match_lines(stdin, stdout).map(|_| ()),
        _ => {
            eprintln!("usage: pattern_lines validate|match < requests.jsonl");
            std::process::exit(2);
        }
    }
}
