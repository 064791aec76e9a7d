//! pacstap library
