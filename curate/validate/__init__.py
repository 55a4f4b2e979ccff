"""Validate: score every manifest row with registered checks and record the ones that fire."""
