//! The demo store in PostgreSQL: schema and COPY loader.
