//! `PRIVET_MASTER_KEY` handling. The only test in its binary, so setting the
//! variable cannot race with other tests reading the environment.

use vault::{MasterKey, MasterKeySource, VaultError};

#[test]
fn env_var_takes_precedence_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.key");
    let from_file = MasterKey::create_file(&file).unwrap();

    std::env::remove_var(MasterKey::ENV);
    let (key, source) = MasterKey::from_env_or_file(&file).unwrap();
    assert_eq!(
        (key.id(), source),
        (from_file.id(), MasterKeySource::File(file.clone()))
    );

    let hex: String = "ab".repeat(32);
    std::env::set_var(MasterKey::ENV, &hex);
    let (key, source) = MasterKey::from_env_or_file(&file).unwrap();
    assert_eq!(
        (key.id(), source),
        (
            MasterKey::from_bytes(&[0xab; 32]).id(),
            MasterKeySource::Env
        )
    );

    std::env::set_var(MasterKey::ENV, "not a key");
    let err = MasterKey::from_env_or_file(&file).unwrap_err();
    assert!(matches!(err, VaultError::BadMasterKeyEnv { .. }), "{err:?}");
    assert!(!err.to_string().contains("not a key"), "{err}");
    std::env::remove_var(MasterKey::ENV);
}
