-- The lease owner that wrote each event: which coordinator drove the
-- transaction at that moment (empty for older rows).
ALTER TABLE dtx_event ADD COLUMN owner TEXT NOT NULL DEFAULT '';
