//! nbexec facade
