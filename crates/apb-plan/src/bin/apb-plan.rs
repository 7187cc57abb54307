//! Native front end of apb-plan: `apb-plan <op>` reads one JSON input per line on stdin and
//! writes one JSON result per line; `apb-plan bench <op> <iterations>` times the operation
//! on the first input line and prints `{"op", "iterations", "meanUs", "minUs"}`.

use std::io::{BufRead, Write};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.iter().map(|s| s.as_str()).collect::<Vec<_>>().as_slice() {
        ["bench", op, iterations] => bench(op, iterations),
        [op] if apb_plan::OPS.contains(op) => serve(op),
        _ => {
            eprintln!("usage: apb-plan <{}> < inputs.jsonl | apb-plan bench <op> <iterations> < input.json", apb_plan::OPS.join("|"));
            2
        }
    };
    std::process::exit(code);
}

fn serve(op: &str) -> i32 {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("apb-plan: cannot read stdin: {e}");
                return 1;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if writeln!(out, "{}", apb_plan::call(op, &line)).is_err() {
            return 1;
        }
    }
    0
}

fn bench(op: &str, iterations: &str) -> i32 {
    let n: u32 = match iterations.parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("apb-plan: iterations must be a positive whole number, got '{iterations}'");
            return 2;
        }
    };
    let mut input = String::new();
    if std::io::stdin().lock().read_line(&mut input).is_err() || input.trim().is_empty() {
        eprintln!("apb-plan: bench needs one JSON input line on stdin");
        return 2;
    }
    let first = apb_plan::call(op, &input);
    if first.starts_with("{\"error\"") {
        eprintln!("apb-plan: {first}");
        return 1;
    }
    let (mut total, mut min, mut bytes) = (0.0f64, f64::MAX, 0usize);
    for _ in 0..n {
        let t = Instant::now();
        let out = apb_plan::call(op, &input);
        let us = t.elapsed().as_secs_f64() * 1e6;
        // Using the output keeps the call from being optimised away.
        bytes += out.len();
        total += us;
        min = min.min(us);
    }
    println!(
        "{{\"op\":\"{op}\",\"iterations\":{n},\"meanUs\":{:.3},\"minUs\":{:.3},\"outputBytes\":{}}}",
        total / n as f64,
        min,
        bytes / n as usize
    );
    0
}
