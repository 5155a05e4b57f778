//! Our AES-256-GCM seal throughput against `openssl speed` on the same
//! machine (1 MiB buffers, ~3 s each). Prints both in MB/s (10^6 bytes/s,
//! as openssl reports) and the ratio; skipped if openssl is not installed.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

const LEN: usize = 1 << 20;

fn ours() -> f64 {
    let key = [7u8; 32];
    let nonce = [1u8; 12];
    let data = vec![0x5au8; LEN];
    let mut buf = Vec::with_capacity(LEN + 16);
    let seal = |buf: &mut Vec<u8>| {
        buf.clear();
        buf.extend_from_slice(&data);
        if let Err(e) = vault::aead::seal(black_box(&key), &nonce, b"", buf) {
            panic!("seal failed: {e}");
        }
        black_box(&buf);
    };
    // Warm up caches and CPU frequency.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(500) {
        seal(&mut buf);
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        seal(&mut buf);
        n += 1;
    }
    (n as f64 * LEN as f64) / start.elapsed().as_secs_f64() / 1e6
}

/// `openssl speed` prints a table whose last line is
/// `AES-256-GCM  <k/s for each size>`, in thousands of bytes per second.
fn openssl() -> Result<Option<f64>, String> {
    let output = match Command::new("openssl")
        .args([
            "speed",
            "-evp",
            "aes-256-gcm",
            "-bytes",
            "1048576",
            "-seconds",
            "3",
        ])
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot run openssl: {e}")),
    };
    if !output.status.success() {
        return Err(format!(
            "openssl speed failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or("openssl printed nothing")?;
    let field = last
        .split_whitespace()
        .last()
        .ok_or_else(|| format!("unexpected openssl line {last:?}"))?;
    let kbytes: f64 = field
        .trim_end_matches('k')
        .parse()
        .map_err(|_| format!("unexpected openssl figure {field:?} in {last:?}"))?;
    Ok(Some(kbytes * 1000.0 / 1e6))
}

fn main() {
    // `cargo bench` passes `--bench`; this harness has no options.
    let ours = ours();
    println!("vault::aead::seal AES-256-GCM 1 MiB: {ours:.0} MB/s");
    match openssl() {
        Ok(Some(theirs)) => {
            println!("openssl speed -evp aes-256-gcm 1 MiB: {theirs:.0} MB/s");
            println!("ratio ours/openssl: {:.2} (target >= 0.5)", ours / theirs);
        }
        Ok(None) => println!("openssl not found: comparison skipped"),
        Err(e) => println!("openssl comparison skipped: {e}"),
    }
}
