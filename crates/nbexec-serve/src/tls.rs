//! HTTPS for `nbexec serve` (rustls with the `ring` provider). Not yet: the server
//! speaks plain HTTP on loopback.
