//! What the test suites of every crate share: the backend in process ([`backend`]) or as its
//! binary ([`process`], for the tests about the process itself), a client of its API ([`api`]),
//! signed requests ([`signed`]), log capture ([`logs`]), a PostgreSQL server ([`postgres`]) and
//! certificates of a private CA ([`tls`]).

#![warn(missing_docs)]

pub mod api;
pub mod backend;
pub mod logs;
pub mod postgres;
pub mod process;
pub mod signed;
pub mod tls;

pub use api::{ADMIN, Api, READER, SECRET, TOKEN};
pub use backend::TestBackend;
