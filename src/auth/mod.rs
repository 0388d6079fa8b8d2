//! Sign-in (placeholder; being written).
