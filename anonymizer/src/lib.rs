//! Privet's anonymizer: what turns governed rows into a dataset an ML team
//! may keep. Nothing here knows about SQL, policies or HTTP; the export
//! path in the gateway feeds it rows that already passed the policy
//! pipeline.
//!
//! - [`scrub`]: PII in free text (emails, phone numbers, Luhn-checked card
//!   numbers, IBANs, IP addresses, known names) replaced by typed
//!   placeholders (`<EMAIL>`, `<CARD>` ...).
//! - [`kanon`]: k-anonymity over quasi-identifiers by Mondrian
//!   multidimensional partitioning, with a suppression limit, optional
//!   l-diversity, and information-loss metrics.
//! - [`transforms`]: per-column generalization (ranges, month/year, age
//!   bands, zip prefixes), time truncation, bounded noise, and keyed
//!   pseudonyms with a key per dataset.
//! - [`dp`]: the discrete Laplace mechanism, sampled exactly from a CSPRNG
//!   with integer arithmetic, and the per-consumer privacy budget ledger.
//! - [`output`]: streaming dataset writers (CSV with formula-injection
//!   guards, JSON Lines, SNAPPY Parquet) with typed columns, bounded
//!   memory, and an atomic rename into place on finish.

pub mod dp;
pub mod kanon;
pub mod output;
pub mod scrub;
pub mod transforms;
