//! Prints the evaluation report: `cargo run --release -p anomaly --example
//! evaluate -- [--seed N] [--full]`.

use anomaly::evaluate::{evaluate, Scale};

fn main() {
    let mut seed = 1;
    let mut scale = Scale::Short;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--full" => scale = Scale::Full,
            "--seed" => match args.next().and_then(|s| s.parse().ok()) {
                Some(s) => seed = s,
                None => {
                    eprintln!("--seed needs a number");
                    std::process::exit(2);
                }
            },
            other => {
                eprintln!("unknown argument {other}; usage: evaluate [--seed N] [--full]");
                std::process::exit(2);
            }
        }
    }
    let started = std::time::Instant::now();
    let report = evaluate(seed, scale);
    print!("{report}");
    eprintln!("({:.1} s)", started.elapsed().as_secs_f64());
}
