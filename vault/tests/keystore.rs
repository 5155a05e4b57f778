//! The keystore and field encryption end to end: persistence, rotation,
//! shredding, atomic saves and what the file and listings must not reveal.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use vault::{
    ciphertext_info, CipherError, Field, KeyKind, KeyState, Keystore, MasterKey, ShredOutcome,
    TokenKey, VaultError,
};

const EMAIL: Field<'static> = Field {
    table: "customers",
    column: "email",
    row_key: "42",
};

fn new_store(dir: &Path) -> (PathBuf, MasterKey, Keystore) {
    let path = dir.join(Keystore::FILE_NAME);
    let master = MasterKey::generate().unwrap();
    let mut ks = Keystore::create(&path, &master).unwrap();
    ks.ensure_column("customers", "email").unwrap();
    ks.ensure_column("customers", "phone").unwrap();
    ks.ensure_column("orders", "email").unwrap();
    ks.ensure_subject("customer:42").unwrap();
    ks.ensure_subject("customer:43").unwrap();
    ks.save().unwrap();
    (path, master, ks)
}

#[test]
fn round_trip_and_fields_are_bound_to_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, ks) = new_store(dir.path());
    let cipher = ks.cipher();
    for subject in [None, Some("customer:42")] {
        let ct = cipher
            .encrypt(&EMAIL, subject, b"jane@example.com")
            .unwrap();
        assert_eq!(cipher.decrypt(&EMAIL, &ct).unwrap(), b"jane@example.com");
        assert!(!ct.contains("customer") && !ct.contains("42."), "{ct}");
        for elsewhere in [
            Field {
                row_key: "43",
                ..EMAIL
            },
            Field {
                row_key: "",
                ..EMAIL
            },
            Field {
                column: "phone",
                ..EMAIL
            },
            Field {
                table: "orders",
                ..EMAIL
            },
        ] {
            assert_eq!(
                cipher.decrypt(&elsewhere, &ct),
                Err(CipherError::Authentication),
                "{elsewhere:?}"
            );
        }
        // Boundaries between table, column and row key cannot be shifted.
        let shifted = Field {
            table: "customersemail",
            column: "",
            row_key: "42",
        };
        assert!(cipher.decrypt(&shifted, &ct).is_err());
    }
}

#[test]
fn keystore_persists_across_save_and_open() {
    let dir = tempfile::tempdir().unwrap();
    let (path, master, ks) = new_store(dir.path());
    let cipher = ks.cipher();
    let plain = cipher.encrypt(&EMAIL, None, b"a").unwrap();
    let bound = cipher.encrypt(&EMAIL, Some("customer:42"), b"b").unwrap();
    let index = cipher.blind_index("customers", "email", b"a").unwrap();
    let token = ks.token_key().pseudonym("customers.id", b"42");

    let reopened = Keystore::open(&path, &master).unwrap();
    let again = reopened.cipher();
    assert_eq!(again.decrypt(&EMAIL, &plain).unwrap(), b"a");
    assert_eq!(again.decrypt(&EMAIL, &bound).unwrap(), b"b");
    assert_eq!(
        again.blind_index("customers", "email", b"a").unwrap(),
        index
    );
    assert_eq!(reopened.token_key().pseudonym("customers.id", b"42"), token);
    assert_eq!(reopened.columns(), ks.columns());
    assert_eq!(reopened.list(), ks.list());

    let (_, created) = Keystore::open_or_create(&path, &master).unwrap();
    assert!(!created);
    let err = Keystore::create(&path, &master).unwrap_err();
    assert!(matches!(err, VaultError::AlreadyExists { .. }), "{err:?}");
    let (fresh, created) =
        Keystore::open_or_create(&dir.path().join("other.pvk"), &master).unwrap();
    assert!(created && fresh.columns().is_empty());
}

#[test]
fn wrong_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, master, _) = new_store(dir.path());
    let other = MasterKey::generate().unwrap();
    let err = Keystore::open(&path, &other).unwrap_err();
    match &err {
        VaultError::WrongMasterKey {
            master_key_id,
            expected_id,
            ..
        } => {
            assert_eq!(master_key_id, &other.id());
            assert_eq!(expected_id, &master.id());
        }
        _ => panic!("{err:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("PRIVET_MASTER_KEY"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn damaged_keystore_is_corrupt_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (path, master, _) = new_store(dir.path());
    let good = fs::read(&path).unwrap();
    // Every single-byte change after the header, and every truncation.
    for i in (0..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        let err = Keystore::open(&path, &master).unwrap_err();
        assert!(
            matches!(
                err,
                VaultError::CorruptKeystore { .. }
                    | VaultError::WrongMasterKey { .. }
                    | VaultError::UnsupportedKeystore { .. }
            ),
            "byte {i}: {err:?}"
        );
    }
    for len in (0..good.len()).step_by(5) {
        fs::write(&path, &good[..len]).unwrap();
        let err = Keystore::open(&path, &master).unwrap_err();
        assert!(
            matches!(err, VaultError::CorruptKeystore { .. }),
            "len {len}: {err:?}"
        );
    }
    fs::write(&path, b"hello world").unwrap();
    let err = Keystore::open(&path, &master).unwrap_err();
    assert!(
        err.to_string().contains("restore it from a backup"),
        "{err}"
    );
    let mut newer = good.clone();
    newer[11] = 2;
    fs::write(&path, &newer).unwrap();
    assert!(matches!(
        Keystore::open(&path, &master),
        Err(VaultError::UnsupportedKeystore { version: 2, .. })
    ));
    fs::write(&path, &good).unwrap();
    assert!(Keystore::open(&path, &master).is_ok());
}

#[test]
fn rotation_keeps_old_values_and_blind_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, master, mut ks) = new_store(dir.path());
    let v1 = ks.cipher();
    let old = v1.encrypt(&EMAIL, None, b"old").unwrap();
    let old_bound = v1
        .encrypt(&EMAIL, Some("customer:42"), b"old bound")
        .unwrap();
    let index = v1
        .blind_index("customers", "email", b"jane@example.com")
        .unwrap();
    assert_eq!(ciphertext_info(&old).unwrap().version, 1);
    assert_eq!(v1.current_version("customers", "email"), Some(1));

    assert_eq!(ks.rotate_column("customers", "email").unwrap(), 2);
    ks.save().unwrap();
    let ks = Keystore::open(&path, &master).unwrap();
    let v2 = ks.cipher();
    assert_eq!(v2.current_version("customers", "email"), Some(2));
    assert_eq!(v2.current_version("customers", "phone"), Some(1));
    assert_eq!(v2.decrypt(&EMAIL, &old).unwrap(), b"old");
    assert_eq!(v2.decrypt(&EMAIL, &old_bound).unwrap(), b"old bound");
    let new = v2.encrypt(&EMAIL, Some("customer:42"), b"new").unwrap();
    let info = ciphertext_info(&new).unwrap();
    assert_eq!(
        (info.format, info.version, info.subject_bound),
        (1, 2, true)
    );
    assert_eq!(
        info.column_key_id,
        ciphertext_info(&old).unwrap().column_key_id
    );
    assert_eq!(
        v2.blind_index("customers", "email", b"jane@example.com")
            .unwrap(),
        index
    );
    // The old snapshot does not know version 2.
    assert!(matches!(
        v1.decrypt(&EMAIL, &new),
        Err(CipherError::UnknownVersion { version: 2, .. })
    ));

    let column = ks
        .list()
        .into_iter()
        .find(|k| k.kind == KeyKind::Column && k.name == "customers.email")
        .unwrap();
    let states: Vec<_> = column
        .versions
        .iter()
        .map(|v| (v.version, v.state))
        .collect();
    assert_eq!(states, [(1, KeyState::Retired), (2, KeyState::Active)]);
}

#[test]
fn unknown_column_rotation_names_known_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, mut ks) = new_store(dir.path());
    let err = ks.rotate_column("customers", "ssn").unwrap_err();
    assert!(matches!(err, VaultError::UnknownColumn { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("customers.ssn"), "{message}");
    assert!(
        message.contains("customers.email, customers.phone, orders.email"),
        "{message}"
    );
    assert!(!ks.ensure_column("customers", "email").unwrap());
    assert!(matches!(
        ks.ensure_column("", "x"),
        Err(VaultError::InvalidName { .. })
    ));
}

#[test]
fn shredding_a_subject_makes_its_values_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let (path, master, mut ks) = new_store(dir.path());
    let before = ks.cipher();
    let jane = before
        .encrypt(&EMAIL, Some("customer:42"), b"jane")
        .unwrap();
    let john_field = Field {
        row_key: "43",
        ..EMAIL
    };
    let john = before
        .encrypt(&john_field, Some("customer:43"), b"john")
        .unwrap();
    let unbound = before.encrypt(&EMAIL, None, b"plain").unwrap();

    assert_eq!(
        ks.shred_subject("customer:42").unwrap(),
        ShredOutcome::Shredded
    );
    assert_eq!(
        ks.shred_subject("customer:42").unwrap(),
        ShredOutcome::AlreadyShredded
    );
    assert!(ks.is_shredded("customer:42") && !ks.is_shredded("customer:43"));
    assert!(matches!(
        ks.shred_subject("customer:99"),
        Err(VaultError::UnknownSubject { .. })
    ));
    ks.save().unwrap();

    let ks = Keystore::open(&path, &master).unwrap();
    assert!(ks.is_shredded("customer:42"));
    let after = ks.cipher();
    assert_eq!(after.decrypt(&EMAIL, &jane), Err(CipherError::Shredded));
    assert_eq!(after.decrypt(&john_field, &john).unwrap(), b"john");
    assert_eq!(after.decrypt(&EMAIL, &unbound).unwrap(), b"plain");
    assert_eq!(
        after.encrypt(&EMAIL, Some("customer:42"), b"x"),
        Err(CipherError::Shredded)
    );

    // Never resurrected, even after reopening.
    let mut ks = ks;
    let err = ks.ensure_subject("customer:42").unwrap_err();
    assert!(matches!(err, VaultError::SubjectShredded { .. }), "{err:?}");
    let subject = ks
        .list()
        .into_iter()
        .find(|k| k.kind == KeyKind::Subject && k.name == "customer:42")
        .unwrap();
    assert_eq!(subject.versions[0].state, KeyState::Shredded);
    assert!(subject.protects.contains("shredded"));
}

#[test]
fn kek_rotation_rewraps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (path, master, mut ks) = new_store(dir.path());
    let ct = ks
        .cipher()
        .encrypt(&EMAIL, Some("customer:42"), b"x")
        .unwrap();
    assert_eq!(ks.rotate_kek().unwrap(), 2);
    ks.save().unwrap();
    let mut ks = Keystore::open(&path, &master).unwrap();
    assert_eq!(ks.cipher().decrypt(&EMAIL, &ct).unwrap(), b"x");
    assert_eq!(ks.rotate_kek().unwrap(), 3);
    ks.save().unwrap();
    let ks = Keystore::open(&path, &master).unwrap();
    assert_eq!(ks.cipher().decrypt(&EMAIL, &ct).unwrap(), b"x");
    let kek = ks
        .list()
        .into_iter()
        .find(|k| k.kind == KeyKind::Kek)
        .unwrap();
    let states: Vec<_> = kek.versions.iter().map(|v| v.state).collect();
    assert_eq!(
        states,
        [KeyState::Retired, KeyState::Retired, KeyState::Active]
    );
}

#[test]
fn imported_token_key_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (path, master, mut ks) = new_store(dir.path());
    let legacy = TokenKey::from_bytes(&[9; 32]);
    ks.import_token_key(&legacy);
    ks.save().unwrap();
    let ks = Keystore::open(&path, &master).unwrap();
    assert_eq!(ks.token_key().id(), legacy.id());
    assert_eq!(
        ks.token_key().pseudonym("t.c", b"v"),
        legacy.pseudonym("t.c", b"v")
    );
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn keystore_file_holds_no_key_or_name_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Keystore::FILE_NAME);
    let master = MasterKey::from_bytes(&[0x11; 32]);
    let mut ks = Keystore::create(&path, &master).unwrap();
    let token = TokenKey::from_bytes(&[0x22; 32]);
    ks.import_token_key(&token);
    ks.ensure_column("customers", "email").unwrap();
    ks.ensure_subject("customer:42").unwrap();
    ks.save().unwrap();
    let file = fs::read(&path).unwrap();
    assert!(file.starts_with(b"PRIVETKS"));
    for needle in [
        &[0x11u8; 32][..],
        &[0x22; 32][..],
        &[0x11; 8][..],
        b"customer:42",
        b"customers",
        b"email",
        b"kek",
        token.id().as_bytes(),
    ] {
        assert!(
            !contains(&file, needle),
            "file contains {:?}",
            String::from_utf8_lossy(needle)
        );
    }
    let hex22: String = "22".repeat(32);
    let b64 = base64::engine::general_purpose::STANDARD.encode([0x22; 32]);
    assert!(!contains(&file, hex22.as_bytes()) && !contains(&file, &b64.as_bytes()[..40]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn list_holds_no_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Keystore::FILE_NAME);
    let master = MasterKey::from_bytes(&[0x33; 32]);
    let mut ks = Keystore::create(&path, &master).unwrap();
    let token_bytes = [0x44u8; 32];
    ks.import_token_key(&TokenKey::from_bytes(&token_bytes));
    ks.ensure_column("customers", "email").unwrap();
    ks.ensure_subject("customer:42").unwrap();
    let list = ks.list();
    let kinds: Vec<_> = list.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(kinds, ["kek", "token", "column", "blind-index", "subject"]);
    let text = format!("{list:?} {ks:?} {:?}", ks.cipher());
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for secret in [[0x33u8; 32], token_bytes] {
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        for form in [
            hex.clone(),
            hex.to_uppercase(),
            b64.encode(secret),
            url.encode(secret),
        ] {
            assert!(!text.contains(&form[..20]), "listing contains key material");
        }
        assert!(!text.contains(&format!("{:?}", &secret[..4])));
    }
    for info in &list {
        assert_eq!(info.id.len(), 16, "{info:?}");
        assert!(!info.id.contains("customer"));
        for v in &info.versions {
            assert!(v.created.ends_with('Z') && v.created.len() == 20, "{v:?}");
        }
    }
}

#[test]
fn leftover_or_partial_tmp_never_breaks_the_keystore() {
    let dir = tempfile::tempdir().unwrap();
    let (path, master, mut ks) = new_store(dir.path());
    let good = fs::read(&path).unwrap();
    let tmp = dir.path().join(format!("{}.tmp", Keystore::FILE_NAME));

    // A crash mid-write leaves a truncated tmp: the real file is untouched.
    fs::write(&tmp, &good[..good.len() / 2]).unwrap();
    let reopened = Keystore::open(&path, &master).unwrap();
    assert_eq!(fs::read(&path).unwrap(), good);
    assert_eq!(reopened.columns(), ks.columns());

    // Garbage tmp: ignored by open, replaced by the next save.
    fs::write(&tmp, b"garbage").unwrap();
    assert!(Keystore::open(&path, &master).is_ok());
    ks.ensure_column("customers", "ssn").unwrap();
    ks.save().unwrap();
    assert!(!tmp.exists(), "save leaves no tmp behind");
    let reopened = Keystore::open(&path, &master).unwrap();
    assert!(reopened
        .columns()
        .contains(&("customers".into(), "ssn".into())));

    // A save that cannot write its tmp fails and leaves the real file alone.
    let before = fs::read(&path).unwrap();
    fs::remove_file(&tmp).ok();
    fs::create_dir(&tmp).unwrap();
    fs::write(tmp.join("x"), b"x").unwrap();
    assert!(ks.save().is_err());
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(Keystore::open(&path, &master).is_ok());
}

#[test]
fn lock_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Keystore::FILE_NAME);
    let held = Keystore::lock(&path).unwrap();
    assert!(held.path().ends_with("keystore.pvk.lock"));
    assert!(Keystore::try_lock(&path).unwrap().is_none());
    let waiter = std::thread::spawn({
        let path = path.clone();
        move || {
            let _lock = Keystore::lock(&path).unwrap();
            std::time::Instant::now()
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let released = std::time::Instant::now();
    drop(held);
    assert!(waiter.join().unwrap() >= released);
    assert!(Keystore::try_lock(&path).unwrap().is_some());
}

#[cfg(unix)]
#[test]
fn master_key_file_with_mode_0644_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.key");
    MasterKey::create_file(&file).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let err = MasterKey::load_file(&file).unwrap_err();
    assert!(
        matches!(err, VaultError::InsecurePermissions { mode: 0o644, .. }),
        "{err:?}"
    );
}

#[test]
fn reencrypt_moves_values_to_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, mut ks) = new_store(dir.path());
    let v1 = ks.cipher();
    let bound = v1.encrypt(&EMAIL, Some("customer:42"), b"jane").unwrap();
    let plain = v1.encrypt(&EMAIL, None, b"plain").unwrap();
    let doomed = v1.encrypt(&EMAIL, Some("customer:43"), b"john").unwrap();
    ks.rotate_column("customers", "email").unwrap();
    ks.shred_subject("customer:43").unwrap();
    let v2 = ks.cipher();
    for (old, value, bound_to_subject) in
        [(&bound, &b"jane"[..], true), (&plain, &b"plain"[..], false)]
    {
        let new = v2.reencrypt(&EMAIL, old).unwrap();
        let info = ciphertext_info(&new).unwrap();
        assert_eq!((info.version, info.subject_bound), (2, bound_to_subject));
        assert_eq!(v2.decrypt(&EMAIL, &new).unwrap(), value);
        // Still bound to its row.
        let other_row = Field {
            row_key: "43",
            ..EMAIL
        };
        assert_eq!(
            v2.reencrypt(&other_row, old),
            Err(CipherError::Authentication)
        );
    }
    assert_eq!(v2.reencrypt(&EMAIL, &doomed), Err(CipherError::Shredded));
}
