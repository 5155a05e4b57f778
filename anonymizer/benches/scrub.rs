//! Scrub throughput on ticket-like text: `cargo bench -p anonymizer --bench scrub`.

use std::hint::black_box;

use anonymizer::scrub::Scrubber;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Support-ticket bodies in the style of the demo generator: greetings,
/// order facts, dates and amounts (which must survive) and contact details
/// in assorted notations (which must not).
const TICKETS: &[&str] = &[
    "Hi,\n\nI ordered on 2024-03-13 (order #48213) and it still hasn't arrived. The tracking page \
     hasn't updated in a week. It should go to 221 Baker Street, London, NW1 6XE. Please call me at \
     +44 20 7946 0958 if the courier needs anything.\n\nThanks,\nOlivia Bennett",
    "Hello team,\n\nThere is a charge of 129,90 € on my card 4539-1488-0343-6467 for order 50213 that I do not \
     recognize. Please investigate and block any further charges. My email is lukasz.wojcik84@gmail.com and \
     my phone number is 601 234 567.\n\n— Łukasz",
    "Dear Privet support,\n\nPlease change the email address on my account from maria.garcia@gmail.com to \
     maria.garcialopez42@proton.me. The phone number on file is (11) 91234-5678.\n\nKind regards,\n\
     María García López\n+55 11 91234 5678",
    "Good morning,\n\nI returned the Everyday Linen Shirt (M, navy) three weeks ago and still haven't seen the \
     refund of $84.50 on my card ending in 4242. Order number 31877, account email j.smith@outlook.com.\n\n\
     Sent from my iPhone",
    "Hi there,\n\nI can't log into my account. My login is kenji.tanaka@icloud.com and the password reset email \
     never arrives (checked spam too). Please call me at 03-1234-5678. Our office IP is 203.0.113.54, \
     the VPN uses 2001:db8:85a3::8a2e:370:7334. Refund to DE89 3704 0044 0532 0130 00 please.\n\nCheers, Kenji",
    "Under GDPR/CCPA I request the deletion of all personal data you hold about me. Name: Anna Kowalska. \
     Email: anna.kowalska@wp.pl. Date of birth: 1987-04-02. Please confirm in writing.\n\nRegards,\nAnna",
];
const NAMES: &[[&str; 2]] = &[
    ["Olivia Bennett", "Olivia"],
    ["Łukasz Wójcik", "Łukasz"],
    ["María García López", "María"],
    ["John Smith", "John"],
    ["Kenji Tanaka", "Kenji"],
    ["Anna Kowalska", "Anna"],
];

fn scrub_throughput(c: &mut Criterion) {
    let scrubber = Scrubber::new();
    let bytes: usize = TICKETS.iter().map(|t| t.len()).sum();
    let mut group = c.benchmark_group("scrub");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("tickets", |b| {
        b.iter(|| {
            let mut out = 0;
            for (text, names) in TICKETS.iter().zip(NAMES) {
                out += scrubber.scrub(black_box(text), names).len();
            }
            black_box(out)
        })
    });
    // One 64 KiB document: how the scanners scale with length.
    let mut long = String::new();
    while long.len() < 64 * 1024 {
        for t in TICKETS {
            long.push_str(t);
            long.push_str("\n\n");
        }
    }
    group.throughput(Throughput::Bytes(long.len() as u64));
    group.bench_function("long_document", |b| {
        b.iter(|| black_box(scrubber.scrub(black_box(&long), &["Anna Kowalska", "Anna"])))
    });
    group.finish();
}

criterion_group!(benches, scrub_throughput);
criterion_main!(benches);
