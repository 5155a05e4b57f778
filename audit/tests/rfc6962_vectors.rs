//! RFC 6962 golden vectors (transparency-dev/merkle's test data, in
//! tests/data/rfc6962) against the independent verifier, the writer's proofs
//! against the same vectors, and a differential test: every proof the
//! writer makes for trees of 1..=64 leaves verifies, and altered ones do
//! not.

use std::path::{Path, PathBuf};

use audit::merkle::{self, leaf_hash, Hash, Tree};
use audit::verifier::{verify_consistency, verify_inclusion};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;

fn vector_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            vector_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc6962/testdata")
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap()).unwrap()
}

/// `proof` may be null (an empty proof) or an array of base64 hashes.
fn proof(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().map(b64).collect(),
        other => panic!("proof is {other}"),
    }
}

fn hashes(proof: &[Vec<u8>]) -> Vec<Hash> {
    proof
        .iter()
        .map(|p| p.as_slice().try_into().unwrap())
        .collect()
}

/// The eight leaves behind the vectors' happy paths (the RFC 6962 reference
/// test data of certificate transparency and transparency-dev/merkle).
fn rfc_tree() -> Tree {
    let leaves: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    let mut tree = Tree::new();
    for leaf in leaves {
        tree.push(leaf_hash(leaf));
    }
    tree
}

#[test]
fn every_vector_is_decided_as_expected() {
    let mut files = Vec::new();
    vector_files(&data_dir(), &mut files);
    files.sort();
    let (mut inclusion, mut consistency, mut rejected) = (0, 0, 0);
    let mut wrong = Vec::new();
    for file in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let want_err = case["wantErr"].as_bool().unwrap();
        let result = if case.get("leafIdx").is_some() {
            inclusion += 1;
            verify_inclusion(
                &b64(&case["leafHash"]),
                case["leafIdx"].as_u64().unwrap(),
                case["treeSize"].as_u64().unwrap(),
                &proof(&case["proof"]),
                &b64(&case["root"]),
            )
        } else {
            consistency += 1;
            verify_consistency(
                case["size1"].as_u64().unwrap(),
                case["size2"].as_u64().unwrap(),
                &proof(&case["proof"]),
                &b64(&case["root1"]),
                &b64(&case["root2"]),
            )
        };
        if want_err {
            rejected += 1;
        }
        if result.is_err() != want_err {
            wrong.push(format!(
                "{}: wantErr {want_err}, got {result:?}",
                file.strip_prefix(data_dir()).unwrap().display()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases decided wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Every file of the shipped data set ran (a partial copy would pass
    // vacuously otherwise).
    assert_eq!((inclusion, consistency), (98, 98));
    assert_eq!(rejected, 196 - 12);
}

#[test]
fn writer_reproduces_the_happy_path_proofs() {
    let tree = rfc_tree();
    let mut files = Vec::new();
    vector_files(&data_dir(), &mut files);
    let mut checked = 0;
    for file in files.iter().filter(|f| f.ends_with("happy-path.json")) {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let expected = hashes(&proof(&case["proof"]));
        if case.get("leafIdx").is_some() {
            let (index, size) = (
                case["leafIdx"].as_u64().unwrap(),
                case["treeSize"].as_u64().unwrap(),
            );
            assert_eq!(tree.root(size).unwrap().to_vec(), b64(&case["root"]));
            assert_eq!(tree.leaf(index).unwrap().to_vec(), b64(&case["leafHash"]));
            assert_eq!(
                tree.inclusion_proof(index, size).unwrap(),
                expected,
                "{file:?}"
            );
        } else {
            let (size1, size2) = (
                case["size1"].as_u64().unwrap(),
                case["size2"].as_u64().unwrap(),
            );
            assert_eq!(tree.root(size1).unwrap().to_vec(), b64(&case["root1"]));
            assert_eq!(tree.root(size2).unwrap().to_vec(), b64(&case["root2"]));
            assert_eq!(
                tree.consistency_proof(size1, size2).unwrap(),
                expected,
                "{file:?}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 10);
}

/// Every way of spoiling a valid proof that must be caught.
fn spoiled(proof: &[Hash]) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    for i in 0..proof.len() {
        let mut p = proof.to_vec();
        p[i][i % 32] ^= 1 << (i % 8);
        out.push(p);
        let mut shorter = proof.to_vec();
        shorter.remove(i);
        out.push(shorter);
    }
    let mut longer = proof.to_vec();
    longer.push([0u8; 32]);
    out.push(longer);
    let mut earlier = vec![[7u8; 32]];
    earlier.extend_from_slice(proof);
    out.push(earlier);
    out
}

#[test]
fn writer_proofs_verify_for_every_size_up_to_64() {
    let leaves: Vec<Hash> = (0u32..64)
        .map(|i| leaf_hash(format!("event {i}").as_bytes()))
        .collect();
    let mut tree = Tree::new();
    for leaf in &leaves {
        tree.push(*leaf);
    }
    for n in 1..=64u64 {
        let part = &leaves[..n as usize];
        let root = tree.root(n).unwrap();
        assert_eq!(root, merkle::root(part), "root of {n}");
        for m in 0..n {
            let proof = tree.inclusion_proof(m, n).unwrap();
            assert_eq!(Some(&proof), merkle::inclusion_proof(part, m).as_ref());
            verify_inclusion(&leaves[m as usize], m, n, &proof, &root)
                .unwrap_or_else(|e| panic!("inclusion {m} in {n}: {e}"));
            // Wrong leaf, wrong index, wrong root, spoiled proofs.
            let other = leaves[((m + 1) % 64) as usize];
            assert!(verify_inclusion(&other, m, n, &proof, &root).is_err());
            if n > 1 {
                assert!(
                    verify_inclusion(&leaves[m as usize], (m + 1) % n, n, &proof, &root).is_err()
                );
            }
            if n < 64 {
                let bigger = tree.root(n + 1).unwrap();
                assert!(verify_inclusion(&leaves[m as usize], m, n + 1, &proof, &bigger).is_err());
            }
            assert!(verify_inclusion(&leaves[m as usize], m, n, &proof, &other).is_err());
            for bad in spoiled(&proof) {
                assert!(
                    verify_inclusion(&leaves[m as usize], m, n, &bad, &root).is_err(),
                    "spoiled inclusion proof {m} in {n} accepted"
                );
            }
        }
        for old in 1..=n {
            let proof = tree.consistency_proof(old, n).unwrap();
            assert_eq!(Some(&proof), merkle::consistency_proof(part, old).as_ref());
            let old_root = tree.root(old).unwrap();
            verify_consistency(old, n, &proof, &old_root, &root)
                .unwrap_or_else(|e| panic!("consistency {old} -> {n}: {e}"));
            assert!(verify_consistency(old, n, &proof, &root, &old_root).is_err() || old == n);
            if old < n {
                assert!(verify_consistency(old, n, &proof, &[9u8; 32], &root).is_err());
                assert!(verify_consistency(old, n, &proof, &old_root, &[9u8; 32]).is_err());
                assert!(verify_consistency(old + 1, n, &proof, &old_root, &root).is_err());
                for bad in spoiled(&proof) {
                    assert!(
                        verify_consistency(old, n, &bad, &old_root, &root).is_err(),
                        "spoiled consistency proof {old} -> {n} accepted"
                    );
                }
            }
        }
    }
}

#[test]
fn writer_proofs_verify_in_a_larger_tree() {
    // Large enough for several stored levels of complete subtrees.
    let n = 5_000u64;
    let mut tree = Tree::new();
    for i in 0..n {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    for size in [1000u64, 1024, 1025, 4095, 4096, 4097, 4999, 5000] {
        let root = tree.root(size).unwrap();
        for index in [0, 1, size / 3, size / 2, size - 2, size - 1] {
            let proof = tree.inclusion_proof(index, size).unwrap();
            verify_inclusion(&tree.leaf(index).unwrap(), index, size, &proof, &root).unwrap();
        }
        for old in [1u64, 7, 16, 17, 511, 512, 513, size - 1, size] {
            let proof = tree.consistency_proof(old, size).unwrap();
            verify_consistency(old, size, &proof, &tree.root(old).unwrap(), &root).unwrap();
        }
    }
}
