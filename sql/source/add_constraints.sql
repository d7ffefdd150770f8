-- The platform's keys, NOT NULLs and CHECKs for the contract tables (PostgreSQL only).
-- Applied by `analytics-pipelines generate` to a clean PostgreSQL source, which proves that the
-- generator's data honours the platform's own constraints. Not applied to a landing (--dirty) source,
-- whose bad rows are exactly what these constraints would reject. Cross-service foreign keys are
-- comments only on the platform, so none are declared here either.

ALTER TABLE venues ADD PRIMARY KEY (id);
ALTER TABLE venues ADD CONSTRAINT venues_slug_unique UNIQUE (slug);
ALTER TABLE venues ALTER COLUMN name SET NOT NULL;
ALTER TABLE venues ALTER COLUMN max_capacity SET NOT NULL;
ALTER TABLE venues ADD CONSTRAINT venues_max_capacity_check CHECK (max_capacity > 0);
ALTER TABLE venues ADD CONSTRAINT venues_status_check CHECK (status IN ('active','inactive','pending','suspended'));

ALTER TABLE event_categories ADD PRIMARY KEY (id);
ALTER TABLE event_categories ADD CONSTRAINT event_categories_slug_unique UNIQUE (slug);

ALTER TABLE events ADD PRIMARY KEY (id);
ALTER TABLE events ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE events ALTER COLUMN venue_id SET NOT NULL;
ALTER TABLE events ALTER COLUMN name SET NOT NULL;
ALTER TABLE events ADD CONSTRAINT events_event_type_check CHECK (event_type IN ('single','recurring','series'));
ALTER TABLE events ADD CONSTRAINT events_status_check CHECK (status IN ('DRAFT','REVIEW','APPROVED','PUBLISHED','ON_SALE','SOLD_OUT','IN_PROGRESS','COMPLETED','CANCELLED','POSTPONED'));

ALTER TABLE event_schedules ADD PRIMARY KEY (id);
ALTER TABLE event_schedules ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE event_schedules ALTER COLUMN starts_at SET NOT NULL;
ALTER TABLE event_schedules ALTER COLUMN ends_at SET NOT NULL;
ALTER TABLE event_schedules ADD CONSTRAINT event_schedules_status_check CHECK (status IN ('SCHEDULED','CONFIRMED','IN_PROGRESS','COMPLETED','CANCELLED','POSTPONED','RESCHEDULED'));

ALTER TABLE ticket_types ADD PRIMARY KEY (id);
ALTER TABLE ticket_types ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE ticket_types ALTER COLUMN price SET NOT NULL;
ALTER TABLE ticket_types ALTER COLUMN quantity SET NOT NULL;
ALTER TABLE ticket_types ADD CONSTRAINT ticket_types_quantity_check CHECK (quantity > 0);
ALTER TABLE ticket_types ADD CONSTRAINT ticket_types_event_name_unique UNIQUE (event_id, name);

ALTER TABLE tickets ADD PRIMARY KEY (id);
ALTER TABLE tickets ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE tickets ALTER COLUMN ticket_type_id SET NOT NULL;
ALTER TABLE tickets ADD CONSTRAINT tickets_ticket_number_unique UNIQUE (ticket_number);
ALTER TABLE tickets ADD CONSTRAINT tickets_status_check CHECK (status IN ('available','reserved','sold','minted','active','transferred','checked_in','used','revoked','refunded','expired','cancelled'));

ALTER TABLE ticket_scans ADD PRIMARY KEY (id);
ALTER TABLE ticket_scans ALTER COLUMN ticket_id SET NOT NULL;
ALTER TABLE ticket_scans ALTER COLUMN scanned_at SET NOT NULL;
ALTER TABLE ticket_scans ADD CONSTRAINT ticket_scans_ticket_event_unique UNIQUE (ticket_id, event_id);
ALTER TABLE ticket_scans ADD CONSTRAINT ticket_scans_result_check CHECK (result IN ('valid','invalid','duplicate','expired','already_used'));

ALTER TABLE ticket_price_history ADD PRIMARY KEY (id);
ALTER TABLE ticket_price_history ALTER COLUMN ticket_type_id SET NOT NULL;
ALTER TABLE ticket_price_history ALTER COLUMN new_price SET NOT NULL;
ALTER TABLE ticket_price_history ALTER COLUMN changed_at SET NOT NULL;

ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE orders ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE orders ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE orders ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE orders ALTER COLUMN status SET NOT NULL;
ALTER TABLE orders ALTER COLUMN total_cents SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_order_number_unique UNIQUE (order_number);

ALTER TABLE order_items ADD PRIMARY KEY (id);
ALTER TABLE order_items ALTER COLUMN order_id SET NOT NULL;
ALTER TABLE order_items ADD CONSTRAINT order_items_quantity_check CHECK (quantity > 0);

ALTER TABLE order_refunds ADD PRIMARY KEY (id);
ALTER TABLE order_refunds ALTER COLUMN order_id SET NOT NULL;
ALTER TABLE order_refunds ADD CONSTRAINT order_refunds_amount_check CHECK (refund_amount_cents > 0);
ALTER TABLE order_refunds ADD CONSTRAINT order_refunds_type_check CHECK (refund_type IN ('FULL','PARTIAL','ITEM'));

ALTER TABLE marketplace_listings ADD PRIMARY KEY (id);
ALTER TABLE marketplace_listings ADD CONSTRAINT marketplace_listings_ticket_unique UNIQUE (ticket_id);
ALTER TABLE marketplace_listings ADD CONSTRAINT marketplace_listings_status_check CHECK (status IN ('active','sold','cancelled','expired','pending_approval'));

ALTER TABLE marketplace_transfers ADD PRIMARY KEY (id);
ALTER TABLE marketplace_transfers ALTER COLUMN listing_id SET NOT NULL;
ALTER TABLE marketplace_transfers ADD CONSTRAINT marketplace_transfers_status_check CHECK (status IN ('initiated','pending','completed','failed','disputed'));
ALTER TABLE marketplace_transfers ADD CONSTRAINT marketplace_transfers_payment_method_check CHECK (payment_method IN ('crypto','fiat'));

ALTER TABLE platform_fees ADD PRIMARY KEY (id);
ALTER TABLE platform_fees ADD CONSTRAINT platform_fees_transfer_unique UNIQUE (transfer_id);

ALTER TABLE users ADD PRIMARY KEY (id);
ALTER TABLE users ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_status_check CHECK (status IN ('PENDING','ACTIVE','SUSPENDED','DELETED'));
