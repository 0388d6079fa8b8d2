//! Microsoft simulator (placeholder; being written).
