"""Infrastructure rehearsal on moto: terraform/ applied, checked, planned, destroyed."""
