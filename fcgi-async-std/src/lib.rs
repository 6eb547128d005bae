//! Not yet implemented: see the project's README for the crates that are ready.
