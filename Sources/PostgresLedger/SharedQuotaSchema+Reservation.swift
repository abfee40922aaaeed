extension SharedQuotaSchema {
    /// The reservation functions (after `tokenctl_quota_ledger_spend`, which they call).
    static let reservation: [String] = [
        // Admission's reservations, a batch in one round trip (a replica sends the reservations
        // that queued while its previous batch was in flight): every budget of a call (user,
        // team, org × day, week, month) or none, the calls in order, each seeing the holds of
        // those before it. Call c has the `p_counts[c]` budgets that follow the previous calls'
        // in the flat arrays; `p_usd`/`p_tokens` are the limits, -1 for none. Returns one row
        // per budget, `o_call` and `o_ord` counting from 1, with the bucket's sums *before*
        // that call (for the refusal message and the remaining-budget headers); `o_refused` is
        // 'usd' or 'tokens' on the first budget that the call's worst case would exceed, and
        // then that call reserved nothing. Every bucket of the batch is locked (or created from
        // the ledger's sum) in key order first, summed in memory, and written once at the end (as
        // computed: no one else can change a locked row); the admitted calls' holds go in at the
        // end too, in one statement instead of one per call.
        """
        CREATE OR REPLACE FUNCTION tokenctl_quota_reserve_many(
            p_call_ids text[], p_replica text, p_counts int4[], p_scopes text[], p_periods text[], p_starts int8[],
            p_ends int8[], p_usd int8[], p_tokens int8[], p_costs int8[], p_cost_tokens int8[], p_hold_seconds int8)
        RETURNS TABLE (o_call int, o_ord int, o_spent int8, o_reserved int8, o_spent_tokens int8,
                       o_reserved_tokens int8, o_refused text)
        LANGUAGE plpgsql \(callPathSettings) AS $$
        DECLARE
            n int := coalesce(array_length(p_scopes, 1), 0);
            bucket record;
            counter record;
            initial record;
            -- The batch's buckets, in key order, and their sums as the batch's calls are admitted.
            nb int := 0;
            b_scopes text[] := '{}';
            b_periods text[] := '{}';
            b_starts int8[] := '{}';
            b_spent numeric[] := '{}';
            b_reserved numeric[] := '{}';
            b_spent_tokens numeric[] := '{}';
            b_reserved_tokens numeric[] := '{}';
            of_budget int[] := array_fill(0, ARRAY[n]);  -- each budget's bucket
            taken int[];  -- the buckets of the call at hand
            taken_scopes text[];
            taken_periods text[];
            taken_starts int8[];
            -- The admitted calls' holds, inserted together at the end.
            holds quota_holds[] := '{}';
            h quota_holds;
            expires timestamptz := now() + make_interval(secs => p_hold_seconds);
            first int := 1;
            b int;
            refused boolean;
            clamp constant numeric := 9223372036854775807;
        BEGIN
            IF n = 0 THEN
                RETURN;
            END IF;
            -- Each bucket in key order: lock it, or create it (from the ledger's sum) and lock it.
            -- A row this transaction inserted is as good as locked by it, so creating and locking
            -- in one ordered pass keeps every transaction taking rows in the same order.
            FOR bucket IN SELECT u.s, u.p, u.st, min(u.en) AS en, array_agg(u.i) AS budgets
                     FROM unnest(p_scopes, p_periods, p_starts, p_ends) WITH ORDINALITY AS u(s, p, st, en, i)
                     GROUP BY u.s, u.p, u.st ORDER BY u.s, u.p, u.st LOOP
                SELECT q.spent, q.reserved, q.spent_tokens, q.reserved_tokens INTO counter FROM quota_counters q
                WHERE q.scope = bucket.s AND q.period = bucket.p AND q.period_start = bucket.st FOR UPDATE;
                IF NOT FOUND THEN
                    SELECT * INTO initial FROM tokenctl_quota_ledger_spend(bucket.s, bucket.st, bucket.en);
                    INSERT INTO quota_counters (scope, period, period_start, spent, spent_tokens)
                    VALUES (bucket.s, bucket.p, bucket.st, initial.o_cost, initial.o_tokens)
                    ON CONFLICT DO NOTHING;
                    SELECT q.spent, q.reserved, q.spent_tokens, q.reserved_tokens INTO STRICT counter
                    FROM quota_counters q
                    WHERE q.scope = bucket.s AND q.period = bucket.p AND q.period_start = bucket.st FOR UPDATE;
                END IF;
                nb := nb + 1;
                b_scopes[nb] := bucket.s;
                b_periods[nb] := bucket.p;
                b_starts[nb] := bucket.st;
                b_spent[nb] := counter.spent;
                b_reserved[nb] := counter.reserved;
                b_spent_tokens[nb] := counter.spent_tokens;
                b_reserved_tokens[nb] := counter.reserved_tokens;
                FOREACH b IN ARRAY bucket.budgets LOOP
                    of_budget[b] := nb;
                END LOOP;
            END LOOP;
            FOR c IN 1..coalesce(array_length(p_call_ids, 1), 0) LOOP
                refused := false;
                FOR i IN first..first + p_counts[c] - 1 LOOP
                    b := of_budget[i];
                    o_call := c;
                    o_ord := i - first + 1;
                    o_spent := least(b_spent[b], clamp);
                    o_reserved := least(b_reserved[b], clamp);
                    o_spent_tokens := least(b_spent_tokens[b], clamp);
                    o_reserved_tokens := least(b_reserved_tokens[b], clamp);
                    o_refused := NULL;
                    IF NOT refused THEN
                        IF p_usd[i] >= 0 AND b_spent[b] + b_reserved[b] + p_costs[c] > p_usd[i] THEN
                            o_refused := 'usd';
                        ELSIF p_tokens[i] >= 0
                              AND b_spent_tokens[b] + b_reserved_tokens[b] + p_cost_tokens[c] > p_tokens[i] THEN
                            o_refused := 'tokens';
                        END IF;
                        refused := o_refused IS NOT NULL;
                    END IF;
                    RETURN NEXT;
                END LOOP;
                IF NOT refused AND p_counts[c] > 0 THEN
                    -- Each distinct bucket once (two budgets of the same scope and period share one).
                    taken := '{}';
                    taken_scopes := '{}';
                    taken_periods := '{}';
                    taken_starts := '{}';
                    FOR i IN first..first + p_counts[c] - 1 LOOP
                        b := of_budget[i];
                        CONTINUE WHEN b = ANY (taken);
                        taken := taken || b;
                        taken_scopes := taken_scopes || b_scopes[b];
                        taken_periods := taken_periods || b_periods[b];
                        taken_starts := taken_starts || b_starts[b];
                        b_reserved[b] := b_reserved[b] + p_costs[c];
                        b_reserved_tokens[b] := b_reserved_tokens[b] + p_cost_tokens[c];
                    END LOOP;
                    h.call_id := p_call_ids[c];
                    h.replica := p_replica;
                    h.scopes := taken_scopes;
                    h.periods := taken_periods;
                    h.period_starts := taken_starts;
                    h.cost := p_costs[c];
                    h.tokens := p_cost_tokens[c];
                    h.reserved_at := now();
                    h.expires_at := expires;
                    holds[coalesce(array_length(holds, 1), 0) + 1] := h;
                END IF;
                first := first + p_counts[c];
            END LOOP;
            IF first - 1 <> n OR n <> array_length(of_budget, 1) THEN
                RAISE EXCEPTION 'tokenctl: % budgets, but the calls count %', n, p_counts;
            END IF;
            IF cardinality(holds) = 0 THEN
                RETURN;
            END IF;
            INSERT INTO quota_holds (call_id, replica, scopes, periods, period_starts, cost, tokens, reserved_at,
                                     expires_at)
            SELECT u.call_id, u.replica, u.scopes, u.periods, u.period_starts, u.cost, u.tokens, u.reserved_at,
                   u.expires_at
            FROM unnest(holds) AS u;
            UPDATE quota_counters q
            SET reserved = k.reserved, reserved_tokens = k.reserved_tokens
            FROM unnest(b_scopes, b_periods, b_starts, b_reserved, b_reserved_tokens)
                 AS k(s, p, st, reserved, reserved_tokens)
            WHERE q.scope = k.s AND q.period = k.p AND q.period_start = k.st
              AND (q.reserved <> k.reserved OR q.reserved_tokens <> k.reserved_tokens);
        END $$
        """,
        // One call's reservation: `tokenctl_quota_reserve_many` of one (after it: a SQL function's
        // body is checked when made). Replicas reserve in batches; this stays for those of earlier
        // versions, which call it.
        """
        CREATE OR REPLACE FUNCTION tokenctl_quota_reserve(
            p_call_id text, p_replica text, p_scopes text[], p_periods text[], p_starts int8[], p_ends int8[],
            p_usd int8[], p_tokens int8[], p_cost int8, p_cost_tokens int8, p_hold_seconds int8)
        RETURNS TABLE (o_ord int, o_spent int8, o_reserved int8, o_spent_tokens int8, o_reserved_tokens int8,
                       o_refused text)
        LANGUAGE sql AS $$
            SELECT r.o_ord, r.o_spent, r.o_reserved, r.o_spent_tokens, r.o_reserved_tokens, r.o_refused
            FROM tokenctl_quota_reserve_many(ARRAY[p_call_id], p_replica,
                                             ARRAY[coalesce(array_length(p_scopes, 1), 0)], p_scopes, p_periods,
                                             p_starts, p_ends, p_usd, p_tokens, ARRAY[p_cost], ARRAY[p_cost_tokens],
                                             p_hold_seconds) r
            ORDER BY r.o_ord
        $$
        """,
    ]
}
