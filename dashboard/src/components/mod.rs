//! One component per file; views read the shared [`crate::state::Live`] context.

pub mod agent_card;
pub mod agent_view;
pub mod app;
pub mod clear_dialog;
pub mod conn_indicator;
pub mod events;
pub mod fleet;
pub mod line_chart;
pub mod login;
pub mod processes;
pub mod sparkline;

#[cfg(test)]
mod tests;
