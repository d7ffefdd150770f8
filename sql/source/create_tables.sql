-- TicketToken source contract: the subset of the platform's tables and columns the analytics read.
-- Names, column types, money units and status values follow the platform's own migrations
-- (see docs/source-contract.md for the table-by-table provenance and why each column is read).
-- Written in PostgreSQL; the embedded DuckDB source is created from this same file
-- (analytics_pipelines/source/contract.py maps jsonb -> VARCHAR, numeric -> DECIMAL).
-- Constraints (keys, CHECKs, NOT NULL) live in add_constraints.sql so that a landing copy of the
-- platform (untrusted, every column text) can be created from the same column list.
-- One column per line, "name type," -- contract.py parses this file.

CREATE TABLE IF NOT EXISTS venues (
    id uuid,
    tenant_id uuid,
    name varchar(200),
    slug varchar(200),
    email varchar(255),
    city varchar(100),
    state_province varchar(100),
    country_code varchar(2),
    timezone varchar(50),
    venue_type varchar(50),
    max_capacity integer,
    status varchar(20),
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS event_categories (
    id uuid,
    name varchar(100),
    slug varchar(100),
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS events (
    id uuid,
    tenant_id uuid,
    venue_id uuid,
    primary_category_id uuid,
    name varchar(300),
    slug varchar(300),
    event_type varchar(50),
    status varchar(50),
    visibility varchar(20),
    start_date timestamptz,
    status_changed_at timestamptz,
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS event_schedules (
    id uuid,
    tenant_id uuid,
    event_id uuid,
    starts_at timestamptz,
    ends_at timestamptz,
    doors_open_at timestamptz,
    timezone varchar(50),
    status varchar(50),
    capacity_override integer,
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS ticket_types (
    id uuid,
    tenant_id uuid,
    event_id uuid,
    name varchar(100),
    category varchar(50),
    price numeric(10,2),
    quantity integer,
    available_quantity integer,
    sold_quantity integer,
    sale_start timestamptz,
    sale_end timestamptz,
    is_active boolean,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS tickets (
    id uuid,
    tenant_id uuid,
    event_id uuid,
    ticket_type_id uuid,
    user_id uuid,
    original_purchaser_id uuid,
    ticket_number varchar(50),
    price_cents numeric(10,2),
    price numeric(10,2),
    face_value numeric(10,2),
    section varchar(20),
    status varchar(20),
    is_validated boolean,
    transfer_count integer,
    purchased_at timestamptz,
    validated_at timestamptz,
    checked_in_at timestamptz,
    status_changed_at timestamptz,
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS ticket_scans (
    id uuid,
    ticket_id uuid,
    event_id uuid,
    scanned_at timestamptz,
    device_id varchar(100),
    location varchar(100),
    result varchar(50),
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS ticket_price_history (
    id uuid,
    ticket_type_id uuid,
    old_price numeric(10,2),
    new_price numeric(10,2),
    changed_by uuid,
    reason text,
    changed_at timestamptz
);

CREATE TABLE IF NOT EXISTS orders (
    id uuid,
    tenant_id uuid,
    user_id uuid,
    event_id uuid,
    order_number varchar(50),
    status varchar(50),
    subtotal_cents bigint,
    platform_fee_cents bigint,
    processing_fee_cents bigint,
    tax_cents bigint,
    discount_cents bigint,
    total_cents bigint,
    currency varchar(3),
    payment_status varchar(50),
    ticket_quantity integer,
    metadata jsonb,
    created_at timestamptz,
    updated_at timestamptz,
    expires_at timestamptz,
    confirmed_at timestamptz,
    cancelled_at timestamptz,
    refunded_at timestamptz
);

CREATE TABLE IF NOT EXISTS order_items (
    id uuid,
    tenant_id uuid,
    order_id uuid,
    ticket_type_id uuid,
    quantity integer,
    unit_price_cents bigint,
    total_price_cents bigint,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS order_refunds (
    id uuid,
    tenant_id uuid,
    order_id uuid,
    refund_amount_cents bigint,
    refund_reason text,
    refund_status varchar(50),
    refund_type varchar(20),
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS marketplace_listings (
    id uuid,
    tenant_id uuid,
    ticket_id uuid,
    seller_id uuid,
    event_id uuid,
    venue_id uuid,
    price integer,
    original_face_value integer,
    status varchar(20),
    listed_at timestamptz,
    sold_at timestamptz,
    expires_at timestamptz,
    cancelled_at timestamptz,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS marketplace_transfers (
    id uuid,
    tenant_id uuid,
    listing_id uuid,
    buyer_id uuid,
    seller_id uuid,
    event_id uuid,
    venue_id uuid,
    usd_value integer,
    status varchar(20),
    payment_method varchar(20),
    payment_currency varchar(10),
    initiated_at timestamptz,
    completed_at timestamptz,
    failed_at timestamptz,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS platform_fees (
    id uuid,
    tenant_id uuid,
    transfer_id uuid,
    sale_price integer,
    platform_fee_amount integer,
    venue_fee_amount integer,
    seller_payout integer,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS users (
    id uuid,
    tenant_id uuid,
    email varchar(255),
    first_name varchar(100),
    last_name varchar(100),
    phone varchar(30),
    country_code varchar(2),
    city varchar(100),
    timezone varchar(50),
    status text,
    marketing_consent boolean,
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz
);
