//! What the test suites of every crate share: the backend in process ([`backend`]) or as its
//! binary ([`process`], for the tests about the process itself), a client of its API ([`api`]),
//! signed requests ([`signed`]), log capture ([`logs`]) and a PostgreSQL server ([`postgres`]).

#![warn(missing_docs)]

pub mod api;
pub mod backend;
pub mod logs;
pub mod postgres;
pub mod process;
pub mod signed;

pub use api::{ADMIN, Api, READER, SECRET, TOKEN};
pub use backend::TestBackend;
