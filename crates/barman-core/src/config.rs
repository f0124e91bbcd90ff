//! Barman configuration model (INI parsing, typed options).
