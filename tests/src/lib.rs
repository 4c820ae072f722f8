//! Integration tests and the rqlited test double (work in progress).
