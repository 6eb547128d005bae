//! Blocking FastCGI client (in progress).
