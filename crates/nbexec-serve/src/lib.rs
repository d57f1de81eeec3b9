//! `nbexec serve` (placeholder root; the serve core lands from branch C).
pub mod auth;
pub mod tls;
