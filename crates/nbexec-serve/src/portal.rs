//! Portal-lite: the few `/portal/sharing/rest/…` routes the ArcGIS Python API needs
//! (opt-in, `--portal`). Not yet.
