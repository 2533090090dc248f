-- The read models of agentlog, version 1. Applied with search_path set to the
-- projection schema, so no name here is qualified. Every table except
-- projector_offsets and schema_migrations is a pure function of the topics:
-- a rebuild from offset zero gives the same rows (see docs/projections.md).

CREATE TABLE projector_offsets (
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL DEFAULT 0,
    end_offset      bigint,
    end_checked_at  timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);

-- Every event of every topic, once per event id (the first offset wins).
-- payload is json (the exact text), not jsonb: cheaper to write, served as is.
-- Query by key: the workflow id on workflow topics (and their dead letters),
-- the resource on locks, the agent id on agents and cache.
CREATE TABLE events (
    event_id        text        PRIMARY KEY,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    type            text        NOT NULL,
    key             text        NOT NULL,
    workflow_id     text,
    occurred_at     timestamptz NOT NULL,
    logged_at       timestamptz,
    causation_id    text,
    correlation_id  text        NOT NULL,
    payload         json        NOT NULL
);
CREATE INDEX events_key ON events (key, occurred_at);

CREATE TABLE event_counts (
    topic  text   NOT NULL,
    type   text   NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (topic, type)
);

CREATE TABLE workflows (
    workflow_id      text        PRIMARY KEY,
    status           text        NOT NULL,
    definition       text        NOT NULL,
    version          integer     NOT NULL,
    priority         integer     NOT NULL,
    input            jsonb,
    spec             jsonb,
    labels           jsonb       NOT NULL,
    idempotency_key  text,
    request_event_id text        NOT NULL,
    correlation_id   text        NOT NULL,
    output           jsonb,
    error_kind       text,
    error_message    text,
    failed_step      text,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    ended_at         timestamptz,
    journal_length   integer     NOT NULL,
    last_event_id    text        NOT NULL,
    last_event_at    timestamptz NOT NULL,
    kafka_partition  integer     NOT NULL,
    last_offset      bigint      NOT NULL
);
CREATE INDEX workflows_created ON workflows (created_at DESC, workflow_id DESC);
CREATE INDEX workflows_status ON workflows (status, created_at DESC, workflow_id DESC);
CREATE INDEX workflows_definition ON workflows (definition, created_at DESC, workflow_id DESC);

-- One row per attempt of one item of one run of a step (a task id), plus the
-- attempt-0 rows of skips and fan-out joins.
CREATE TABLE steps (
    task_id           text        PRIMARY KEY,
    workflow_id       text        NOT NULL,
    step              text        NOT NULL,
    run               integer,
    item              integer,
    attempt           integer     NOT NULL,
    kind              text        NOT NULL,
    status            text        NOT NULL,
    agent_kind        text,
    priority          integer,
    first_event_at    timestamptz NOT NULL,
    scheduled_at      timestamptz,
    deadline          timestamptz,
    requested_at      timestamptz,
    completed_at      timestamptz,
    output            jsonb,
    failed_at         timestamptz,
    error_kind        text,
    error_message     text,
    retryable         boolean,
    timed_out_at      timestamptz,
    retry_at          timestamptz,
    next_attempt      integer,
    backoff_ms        bigint,
    duration_ms       double precision,
    agent_id          text,
    agent_outcome     text,
    agent_reported_at timestamptz,
    agent_event_id    text,
    input_tokens      bigint,
    output_tokens     bigint,
    cost_usd          double precision,
    agent_latency_ms  double precision,
    progress          double precision,
    progress_message  text,
    progress_at       timestamptz,
    progress_event_id text,
    cancelled_at      timestamptz,
    cancel_reason     text
);
CREATE INDEX steps_workflow ON steps (workflow_id, first_event_at, task_id);

CREATE TABLE locks (
    resource          text        PRIMARY KEY,
    status            text        NOT NULL,
    holder            text,
    holder_request_id text,
    fencing_token     bigint,
    lease_expires_at  timestamptz,
    granted_at        timestamptz,
    queue             jsonb       NOT NULL,
    requests          bigint      NOT NULL,
    grants            bigint      NOT NULL,
    queued            bigint      NOT NULL,
    denials           bigint      NOT NULL,
    releases          bigint      NOT NULL,
    expiries          bigint      NOT NULL,
    last_event_at     timestamptz NOT NULL
);

CREATE TABLE lock_requests (
    request_id       text        PRIMARY KEY,
    resource         text        NOT NULL,
    requester        text,
    workflow_id      text,
    status           text        NOT NULL,
    ttl_ms           bigint,
    wait_timeout_ms  bigint,
    requested_at     timestamptz,
    queued_at        timestamptz,
    queue_position   integer,
    granted_at       timestamptz,
    fencing_token    bigint,
    lease_expires_at timestamptz,
    renewals         integer     NOT NULL,
    denied_at        timestamptz,
    deny_reason      text,
    released_at      timestamptz,
    expired_at       timestamptz,
    wait_ms          double precision,
    last_event_at    timestamptz NOT NULL
);
CREATE INDEX lock_requests_resource ON lock_requests (resource, last_event_at);

CREATE TABLE agents (
    agent_id          text        PRIMARY KEY,
    agent_kind        text        NOT NULL,
    host              text,
    pid               integer,
    concurrency       integer,
    version           text,
    registered_at     timestamptz,
    last_seen_at      timestamptz NOT NULL,
    in_flight         integer,
    capacity          integer,
    heartbeats        bigint      NOT NULL,
    deregistered_at   timestamptz,
    deregister_reason text
);

CREATE TABLE dead_letters (
    event_id           text        PRIMARY KEY,
    topic              text        NOT NULL,
    kafka_partition    integer     NOT NULL,
    kafka_offset       bigint      NOT NULL,
    occurred_at        timestamptz NOT NULL,
    original_topic     text        NOT NULL,
    original_partition integer     NOT NULL,
    original_offset    bigint      NOT NULL,
    original_key       bytea,
    original_timestamp timestamptz,
    error_reason       text        NOT NULL,
    error              text        NOT NULL,
    raw                bytea       NOT NULL,
    headers            jsonb       NOT NULL,
    consumer_group     text        NOT NULL
);
CREATE INDEX dead_letters_time ON dead_letters (occurred_at DESC, event_id DESC);

-- Additive rollups: integer sums only (microseconds), so that the order in
-- which batches add them never changes the result.
CREATE TABLE agent_metrics_minute (
    agent_kind              text        NOT NULL,
    minute                  timestamptz NOT NULL,
    completed               bigint      NOT NULL,
    failed                  bigint      NOT NULL,
    retried                 bigint      NOT NULL,
    timed_out               bigint      NOT NULL,
    latency_us_sum          bigint      NOT NULL,
    latency_buckets         bigint[]    NOT NULL,
    cache_hits              bigint      NOT NULL,
    cache_misses            bigint      NOT NULL,
    cache_hit_latency_us    bigint      NOT NULL,
    cache_miss_latency_us   bigint      NOT NULL,
    cache_latency_saved_us  bigint      NOT NULL,
    cache_tokens_saved      bigint      NOT NULL,
    cache_evictions         bigint      NOT NULL,
    cache_degraded_windows  bigint      NOT NULL,
    PRIMARY KEY (agent_kind, minute)
);
CREATE INDEX agent_metrics_minute_time ON agent_metrics_minute (minute);

CREATE TABLE lock_metrics_minute (
    resource     text        NOT NULL,
    minute       timestamptz NOT NULL,
    requested    bigint      NOT NULL,
    granted      bigint      NOT NULL,
    queued       bigint      NOT NULL,
    denied       bigint      NOT NULL,
    released     bigint      NOT NULL,
    expired      bigint      NOT NULL,
    wait_us_sum  bigint      NOT NULL,
    wait_buckets bigint[]    NOT NULL,
    PRIMARY KEY (resource, minute)
);
CREATE INDEX lock_metrics_minute_time ON lock_metrics_minute (minute);
