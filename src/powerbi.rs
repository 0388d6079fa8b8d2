//! Power BI REST client (placeholder; being written).
