//! `barman-fuzz-afl TARGET`: runs fuzz target TARGET (a name of
//! `barman_fuzz::TARGETS`) under AFL++'s persistent mode.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = barman_fuzz::TARGETS.iter().find(|t| t.name == name) else {
        let names: Vec<_> = barman_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "usage: barman-fuzz-afl TARGET (one of {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    let run = target.run;
    afl::fuzz!(|data: &[u8]| run(data));
}
