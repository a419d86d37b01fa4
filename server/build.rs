//! Rebuild when a schema migration is added: `refinery::embed_migrations!`
//! reads `src/postgres/migrations/` at compile time.

fn main() {
    println!("cargo:rerun-if-changed=src/postgres/migrations");
}
