//! Small helpers: hex, randomness, secret buffers wiped on drop, UTC times.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::VaultError;

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Decodes exactly 64 hex digits (either case) into 32 bytes.
pub(crate) fn hex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        // Both digits are < 16, so this fits a byte.
        *byte = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| VaultError::Random)?;
    Ok(out)
}

/// A random opaque key id: 16 hex digits. Random rather than derived from a
/// name, so ids (which appear in ciphertexts) say nothing about whose data it
/// is.
pub(crate) fn random_id() -> Result<String, VaultError> {
    Ok(hex(&random::<8>()?))
}

/// 32 bytes of key material, overwritten with zeros when dropped so a freed
/// key does not linger in memory (best effort: copies made by ring's key
/// schedules are out of our reach).
pub(crate) struct Secret(pub(crate) [u8; 32]);

impl Secret {
    pub(crate) fn random() -> Result<Secret, VaultError> {
        Ok(Secret(random::<32>()?))
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // Volatile, so the compiler cannot drop the "dead" stores.
            // SAFETY: `b` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// Overwrites a buffer that held key material, then frees it.
pub(crate) fn wipe(mut bytes: Vec<u8>) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The current time as RFC 3339 UTC, to the second (`2024-05-01T12:00:00Z`).
pub(crate) fn now_rfc3339() -> String {
    // A clock before 1970 is a misconfigured host; the epoch is a harmless
    // stand-in for a creation date.
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to dates from 1970 on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        let now = now_rfc3339();
        assert_eq!(now.len(), 20);
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T');
    }

    #[test]
    fn hex_round_trip() {
        let bytes: Vec<u8> = (0..32).map(|i| i * 7 + 3).collect();
        let text = hex(&bytes);
        assert_eq!(hex32(text.as_bytes()).unwrap().as_slice(), bytes.as_slice());
        assert_eq!(
            hex32(text.to_uppercase().as_bytes()).unwrap().as_slice(),
            bytes.as_slice()
        );
        assert!(hex32(&text.as_bytes()[..62]).is_none());
        assert!(hex32("g".repeat(64).as_bytes()).is_none());
        assert!(hex32("+1".repeat(32).as_bytes()).is_none());
    }
}
