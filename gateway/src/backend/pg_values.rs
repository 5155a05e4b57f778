//! PostgreSQL values (binary wire format) to JSON, and text parameters to
//! the types PostgreSQL infers for them.
