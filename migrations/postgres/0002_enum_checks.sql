-- Version kept in step with migrations/sqlite/0002_enum_checks.sql, which
-- rewrites three SQLite enum CHECKs (IN lists built a temporary B-tree per
-- row there). PostgreSQL evaluates IN lists and enum types directly, so its
-- schema does not change.
SELECT 1;
