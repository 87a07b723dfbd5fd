//! A policy file as read: the name to report it by and its text. A leaf: the compiler reads it and the
//! set hashes it, and neither needs the other for that.

/// One policy file's text and the name to report it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: String,
    pub text: String,
}
