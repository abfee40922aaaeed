/// The shared quota state's tables and functions on PostgreSQL (see `SharedQuotaBook`).
///
/// Installed by every replica at start-up, idempotently (`IF NOT EXISTS`, `CREATE OR REPLACE`),
/// under a transaction-scoped advisory lock so that replicas starting together do not race on
/// the catalog; the functions only when no newer version of them is installed
/// (`functionsVersion`). Money is pico-dollars and times of calls are Unix µs, as in the ledger; counters
/// are `numeric` (a month of an org's spend cannot overflow them). Hold expiry and replica
/// heartbeats use the server's clock (`now()`), so replicas with skewed clocks agree on them.
///
/// The functions on a call's path (reserve, settle, apply) run with `callPathSettings`:
/// `enable_seqscan = off` and `plan_cache_mode = force_generic_plan`. PL/pgSQL keeps the plan it made on a connection's
/// first calls, when the tables were small and a hash join over a sequential scan looked
/// cheapest. `quota_holds` takes a row in and out per call, so between two autovacuums (a minute
/// apart by default) it fills with dead rows, which such a scan reads on every batch (at 16
/// connections the proxy fell from 2,000–2,640 to 1,640–2,080 calls/s within 40 s). Their keys
/// have an index each; a lookup by it skips the dead rows. And with arrays for parameters,
/// PostgreSQL kept planning each statement again on every call (a custom plan looked cheaper
/// than the generic one), a quarter of its time; the generic plans are these same lookups.
/// `tokenctl_quota_ledger_spend`, which the reservation calls, sets both back: it sums a range
/// of the ledger once per new counter, where a plan for the range at hand (a parallel scan of
/// a month, say) beats a generic index scan, and planning once costs nothing.
///
/// Lock order, which keeps the functions free of deadlocks: a function that touches counters
/// locks all of them first, in key order (`ORDER BY scope, period, period_start FOR UPDATE`;
/// the reservation creates missing counters in the same ordered pass, a row it inserted being
/// as good as locked), and hold rows are taken either before that (settle: its own hold) or
/// with `SKIP LOCKED` (the reaper), never waited for while counters are held.
enum SharedQuotaSchema {
    /// Any constant, shared by all replicas: the advisory lock that serialises installs.
    static let installLock: Int64 = 0x746F_6B65_6E71_7461  // "tokenqta"

    /// The settings of the functions on a call's path (see the type's notes).
    static let callPathSettings = "SET enable_seqscan = off SET plan_cache_mode = force_generic_plan"

    /// The version of `functions`: raise it with any change to their SQL (a test holds their
    /// digest to it). A replica installs the functions only when the database's version is not
    /// newer than its own, so that during a rolling deploy an older replica that restarts leaves
    /// the newer bodies in place instead of putting its own back. Newer functions therefore keep
    /// the signatures older replicas call (as `tokenctl_quota_settle` and
    /// `tokenctl_quota_reserve` do), and a function stays as long as a running version calls it.
    static let functionsVersion: Int64 = 3

    /// `quota_meta`'s row holding the installed functions' version.
    static let functionsVersionName = "functions_version"

    /// Created if missing on every start; they do not change between versions.
    static let tables: [String] = [
        """
        CREATE TABLE IF NOT EXISTS quota_counters (
            scope text NOT NULL,
            period text NOT NULL,
            period_start int8 NOT NULL,
            spent numeric NOT NULL DEFAULT 0,
            spent_tokens numeric NOT NULL DEFAULT 0,
            reserved numeric NOT NULL DEFAULT 0,
            reserved_tokens numeric NOT NULL DEFAULT 0,
            PRIMARY KEY (scope, period, period_start)
        )
        """,
        // One row per admitted call not yet settled: the distinct buckets it holds and how much.
        """
        CREATE TABLE IF NOT EXISTS quota_holds (
            call_id text PRIMARY KEY,
            replica text NOT NULL,
            scopes text[] NOT NULL,
            periods text[] NOT NULL,
            period_starts int8[] NOT NULL,
            cost numeric NOT NULL,
            tokens numeric NOT NULL,
            reserved_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS quota_holds_replica ON quota_holds (replica)",
        "CREATE INDEX IF NOT EXISTS quota_holds_expires_at ON quota_holds (expires_at)",
        // Holds the reaper removed, for a while: a replica that was only slow (not dead) may
        // still settle its call, and must then charge it exactly once (`charged`: the reaper
        // already added the ledger row's cost, or a late settle did).
        """
        CREATE TABLE IF NOT EXISTS quota_reaped (
            call_id text PRIMARY KEY,
            scopes text[] NOT NULL,
            periods text[] NOT NULL,
            period_starts int8[] NOT NULL,
            charged boolean NOT NULL,
            reaped_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS quota_replicas (
            replica text PRIMARY KEY,
            seen_at timestamptz NOT NULL
        )
        """,
        "CREATE TABLE IF NOT EXISTS quota_meta (name text PRIMARY KEY, value int8 NOT NULL)",
    ]

    /// Replaced on start when the database's `functionsVersion` is not newer than ours.
    static let functions: [String] = [
        // The ledger's spend of one scope in [start, end): a counter's starting point, so a
        // counter created mid-period (first call of the day on any replica, or after pruning)
        // starts from what the ledger already holds. Refusals cost nothing and are left out, as
        // in the single-node rebuild (`LedgerReader.spend(since:)`).
        """
        CREATE OR REPLACE FUNCTION tokenctl_quota_ledger_spend(p_scope text, p_start int8, p_end int8,
                                                               OUT o_cost numeric, OUT o_tokens numeric)
        LANGUAGE plpgsql STABLE SET enable_seqscan = on SET plan_cache_mode = force_custom_plan AS $$
        BEGIN
            IF p_scope = 'org' THEN
                SELECT coalesce(sum(c.cost_pd), 0),
                       coalesce(sum(c.input_tokens + c.cached_input_tokens + c.cache_write_tokens + c.output_tokens), 0)
                INTO o_cost, o_tokens FROM calls c
                WHERE c.started_at >= p_start AND c.started_at < p_end AND c.outcome NOT LIKE 'refused\\_%';
            ELSIF left(p_scope, 5) = 'user:' THEN
                SELECT coalesce(sum(c.cost_pd), 0),
                       coalesce(sum(c.input_tokens + c.cached_input_tokens + c.cache_write_tokens + c.output_tokens), 0)
                INTO o_cost, o_tokens FROM calls c
                WHERE c."user" = substr(p_scope, 6) AND c.started_at >= p_start AND c.started_at < p_end
                  AND c.outcome NOT LIKE 'refused\\_%';
            ELSIF left(p_scope, 5) = 'team:' THEN
                SELECT coalesce(sum(c.cost_pd), 0),
                       coalesce(sum(c.input_tokens + c.cached_input_tokens + c.cache_write_tokens + c.output_tokens), 0)
                INTO o_cost, o_tokens FROM calls c
                WHERE c.team = substr(p_scope, 6) AND c.started_at >= p_start AND c.started_at < p_end
                  AND c.outcome NOT LIKE 'refused\\_%';
            ELSE
                RAISE EXCEPTION 'tokenctl: unknown quota scope %', p_scope;
            END IF;
        END $$
        """,
        // Removes `held` from each bucket's reservations (never below zero) and adds the spend.
        // Locks the buckets in key order first (a no-op for rows the caller already locked).
        """
        CREATE OR REPLACE FUNCTION tokenctl_quota_apply(p_scopes text[], p_periods text[], p_starts int8[],
                                                        p_held numeric, p_held_tokens numeric,
                                                        p_spent numeric, p_spent_tokens numeric)
        RETURNS void LANGUAGE plpgsql \(callPathSettings) AS $$
        BEGIN
            PERFORM 1 FROM quota_counters q
            JOIN unnest(p_scopes, p_periods, p_starts) AS k(s, p, st)
              ON q.scope = k.s AND q.period = k.p AND q.period_start = k.st
            ORDER BY q.scope, q.period, q.period_start FOR UPDATE OF q;
            UPDATE quota_counters q
            SET reserved = greatest(0, q.reserved - p_held),
                reserved_tokens = greatest(0, q.reserved_tokens - p_held_tokens),
                spent = q.spent + p_spent,
                spent_tokens = q.spent_tokens + p_spent_tokens
            FROM unnest(p_scopes, p_periods, p_starts) AS k(s, p, st)
            WHERE q.scope = k.s AND q.period = k.p AND q.period_start = k.st;
        END $$
        """,
    ] + reservation + [
        // Settlement after the calls' ledger rows committed, a batch in one round trip (a replica
        // sends the settlements that queued while its previous batch was in flight): each call's
        // hold becomes its actual spend. Idempotent: without a hold nothing changes, unless the
        // reaper took the hold before the call's row existed (a slow replica, not a dead one):
        // then the spend is charged once. Releasing is settling for nothing. A call named twice
        // settles once. The holds are taken first, in a statement of their own: a hold a reaper
        // is taking is waited for and is then gone, and the next statement's snapshot sees the
        // reaper's record of it, so that call is charged there (in one statement, it would see
        // neither). Then every counter the holds and records touch is locked in key order and
        // given the batch's sums: clamping `reserved` at zero once per counter gives what
        // clamping once per hold would. Returns each call settled.
        """
        CREATE OR REPLACE FUNCTION tokenctl_quota_settle_many(p_call_ids text[], p_costs int8[], p_tokens int8[])
        RETURNS TABLE (o_call_id text) LANGUAGE plpgsql \(callPathSettings) AS $$
        DECLARE
            taken quota_holds[];
            k_scopes text[];
            k_periods text[];
            k_starts int8[];
            k_held numeric[];
            k_held_tokens numeric[];
            k_spent numeric[];
            k_spent_tokens numeric[];
            settled text[];
        BEGIN
            WITH gone AS (
                DELETE FROM quota_holds h WHERE h.call_id = ANY (p_call_ids) RETURNING h.*
            )
            SELECT array_agg(gone::quota_holds) INTO taken FROM gone;
            WITH batch AS (
                SELECT DISTINCT ON (u.id) u.id, greatest(u.cost, 0) AS cost, greatest(u.tokens, 0) AS tokens
                FROM unnest(p_call_ids, p_costs, p_tokens) WITH ORDINALITY AS u(id, cost, tokens, n)
                ORDER BY u.id, u.n
            ), held AS (
                SELECT h.call_id, h.scopes, h.periods, h.period_starts, h.cost::numeric AS held,
                       h.tokens::numeric AS held_tokens, c.cost AS spent, c.tokens AS spent_tokens
                FROM unnest(taken) AS h JOIN batch c ON c.id = h.call_id
            ), reaped AS (
                UPDATE quota_reaped r SET charged = true FROM batch c
                WHERE r.call_id = c.id AND NOT r.charged AND NOT EXISTS (SELECT 1 FROM held WHERE held.call_id = c.id)
                RETURNING r.call_id, r.scopes, r.periods, r.period_starts, 0::numeric AS held,
                          0::numeric AS held_tokens, c.cost AS spent, c.tokens AS spent_tokens
            ), done AS (
                SELECT * FROM held UNION ALL SELECT * FROM reaped
            ), sums AS (
                SELECT k.s, k.p, k.st, sum(d.held) AS held, sum(d.held_tokens) AS held_tokens,
                       sum(d.spent) AS spent, sum(d.spent_tokens) AS spent_tokens
                FROM done d CROSS JOIN LATERAL unnest(d.scopes, d.periods, d.period_starts) AS k(s, p, st)
                GROUP BY k.s, k.p, k.st
            )
            SELECT array_agg(x.s), array_agg(x.p), array_agg(x.st), array_agg(x.held), array_agg(x.held_tokens),
                   array_agg(x.spent), array_agg(x.spent_tokens), (SELECT array_agg(d.call_id) FROM done d)
            INTO k_scopes, k_periods, k_starts, k_held, k_held_tokens, k_spent, k_spent_tokens, settled
            FROM sums x;
            IF settled IS NULL THEN
                RETURN;
            END IF;
            PERFORM 1 FROM quota_counters q
            JOIN unnest(k_scopes, k_periods, k_starts) AS k(s, p, st)
              ON q.scope = k.s AND q.period = k.p AND q.period_start = k.st
            ORDER BY q.scope, q.period, q.period_start FOR UPDATE OF q;
            UPDATE quota_counters q
            SET reserved = greatest(0, q.reserved - k.held),
                reserved_tokens = greatest(0, q.reserved_tokens - k.held_tokens),
                spent = q.spent + k.spent,
                spent_tokens = q.spent_tokens + k.spent_tokens
            FROM unnest(k_scopes, k_periods, k_starts, k_held, k_held_tokens, k_spent, k_spent_tokens)
                 AS k(s, p, st, held, held_tokens, spent, spent_tokens)
            WHERE q.scope = k.s AND q.period = k.p AND q.period_start = k.st;
            RETURN QUERY SELECT unnest(settled);
        END $$
        """,
        // One call's settlement: `tokenctl_quota_settle_many` of one (after it: a SQL function's body
        // is checked when made). Replicas settle in batches; this stays for those of earlier
        // versions, which call it.
        """
        CREATE OR REPLACE FUNCTION tokenctl_quota_settle(p_call_id text, p_cost int8, p_tokens int8)
        RETURNS boolean LANGUAGE sql AS $$
            SELECT EXISTS (SELECT 1 FROM tokenctl_quota_settle_many(ARRAY[p_call_id], ARRAY[p_cost], ARRAY[p_tokens]))
        $$
        """,
        // The reaper: holds of replicas not seen for `p_replica_timeout_us`, or past their
        // expiry, are removed; a call whose ledger row exists (it committed, its replica died
        // before settling) is charged what the row says. At most 1000 holds per run; holds
        // another reaper is taking are skipped, not waited for. Returns (reaped, charged).
        """
        CREATE OR REPLACE FUNCTION tokenctl_quota_reap(p_replica_timeout_us int8)
        RETURNS TABLE (o_reaped int, o_charged int) LANGUAGE plpgsql AS $$
        DECLARE
            gone quota_holds[];
            h quota_holds;
            row_cost numeric;
            row_tokens numeric;
        BEGIN
            o_reaped := 0;
            o_charged := 0;
            WITH doomed AS (
                SELECT qh.call_id FROM quota_holds qh
                WHERE qh.expires_at < now()
                   OR NOT EXISTS (SELECT 1 FROM quota_replicas r WHERE r.replica = qh.replica
                                  AND r.seen_at > now() - make_interval(secs => p_replica_timeout_us / 1e6))
                ORDER BY qh.call_id LIMIT 1000 FOR UPDATE SKIP LOCKED
            ), deleted AS (
                DELETE FROM quota_holds qh USING doomed d WHERE qh.call_id = d.call_id RETURNING qh.*
            )
            SELECT array_agg(deleted::quota_holds) INTO gone FROM deleted;
            IF gone IS NULL THEN
                RETURN NEXT;
                RETURN;
            END IF;
            PERFORM 1 FROM quota_counters q
            JOIN (SELECT DISTINCT k.s, k.p, k.st FROM unnest(gone) g,
                  unnest(g.scopes, g.periods, g.period_starts) AS k(s, p, st)) b
              ON q.scope = b.s AND q.period = b.p AND q.period_start = b.st
            ORDER BY q.scope, q.period, q.period_start FOR UPDATE OF q;
            FOREACH h IN ARRAY gone LOOP
                SELECT c.cost_pd, c.input_tokens + c.cached_input_tokens + c.cache_write_tokens + c.output_tokens
                INTO row_cost, row_tokens FROM calls c
                WHERE c.id = h.call_id AND c.outcome NOT LIKE 'refused\\_%' LIMIT 1;
                PERFORM tokenctl_quota_apply(h.scopes, h.periods, h.period_starts, h.cost, h.tokens,
                                             coalesce(row_cost, 0), coalesce(row_tokens, 0));
                INSERT INTO quota_reaped (call_id, scopes, periods, period_starts, charged)
                VALUES (h.call_id, h.scopes, h.periods, h.period_starts, row_cost IS NOT NULL)
                ON CONFLICT (call_id) DO NOTHING;
                o_reaped := o_reaped + 1;
                IF row_cost IS NOT NULL THEN
                    o_charged := o_charged + 1;
                END IF;
            END LOOP;
            RETURN NEXT;
        END $$
        """,
        // Housekeeping, now and then: counters of periods long over (nothing held), reap records
        // older than any call can run, replicas gone for a day.
        """
        CREATE OR REPLACE FUNCTION tokenctl_quota_prune(p_counters_before int8)
        RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM quota_counters WHERE period_start < p_counters_before AND reserved = 0 AND reserved_tokens = 0;
            DELETE FROM quota_reaped WHERE reaped_at < now() - interval '2 days';
            DELETE FROM quota_replicas WHERE seen_at < now() - interval '1 day';
        END $$
        """,
    ]
}
