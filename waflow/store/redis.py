"""A :class:`~waflow.store.base.Store` in Redis, shared by many workers on many machines.

Every method that reads and then writes is one Lua script (registered once, run by ``EVALSHA``),
so it is atomic across processes without ``WATCH`` retries; reads of a single structure are single
commands. The layout, under ``prefix`` (``waflow:`` by default):

=================================  ===========================================================
``inbox:item:{key}``               hash: one event; it stays after handling as the dedupe record
``inbox:queue:{customer}``         sorted set: the customer's pending keys, scored by arrival
``inbox:due``                      sorted set: each non-empty queue's head (see below)
``inbox:dead`` / ``inbox:done``    sorted sets of keys, by arrival / by receipt (for pruning)
``inbox:seq`` / ``outbox:seq``     counters (``INCR``): arrival order, exact across processes
``status:{id}``                    hash: a sent message's status, rank and ``at:{status}`` times
``status-errors:{id}``             list: the message's errors, as JSON, in arrival order
``status-times``                   sorted set: message ids by their latest status (for pruning)
``doc:{id}``                       hash: a customer document's ``data`` (JSON) and ``version``
``index`` / ``handoffs``           hashes: channel-id key -> customer id; code -> record JSON
``deadlines``                      sorted set: customer id scored by deadline
``lock:{key}``                     hash: owner and logical expiry, with a key TTL as a backstop
``outbox:item:{id}``               hash: one message to send
``outbox:queue:{customer}``        sorted set: the customer's pending ids, scored by sequence
``outbox:due``                     sorted set: each non-empty queue's head (see below)
``outbox:pending`` / ``parked``    sorted sets of ids by sequence
``outbox:sent``                    sorted set of ids by when they were sent (listing, pruning)
=================================  ===========================================================

**Heads.** A customer's queue hands out only its head, so each ``due`` set holds exactly one member
per non-empty queue: ``"{seq:020d}|{customer}"``, scored by when that head can next be handed
out — its ``next_attempt_at``, or the end of its lease if later. Claiming is then a range query on
``due`` (``O(log n)`` per item, never a scan of all messages), and heads due at the same moment come
out in arrival order because equal scores sort by member. When more customers are due than the
``limit`` asked for, those due longest go first, as in the other stores.

**Time.** Timestamps are UTC seconds as Python writes them (``repr`` of ``datetime.timestamp()``,
like SQLite), read back as aware UTC datetimes. The scripts pass them through as strings and compare
them with ``tonumber``: Lua prints numbers with 14 significant digits, which would round them.

Scripts build key names from the prefix, so the store needs one Redis server (with replicas if you
like), not Redis Cluster. Needs the ``redis`` extra: ``pip install 'waflow[redis]'``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from waflow.errors import ConcurrentUpdateError, ConfigError
from waflow.store.base import (
    LEASE_RAN_OUT,
    STATUS_RANK,
    USED_HANDOFF,
    Commit,
    Document,
    InboxItem,
    InboxState,
    MessageRecord,
    NewInboxItem,
    OutboxCompletion,
    OutboxItem,
    OutboxState,
    StatusUpdate,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisStore"]

#: Records deleted per script run by the ``*_prune`` methods, so one prune never blocks Redis for
#: long.
PRUNE_BATCH = 500

# -- Lua -----------------------------------------------------------------------------------------
# Every script starts with this prelude. ARGV[1] is always the key prefix.
_PRELUDE = """
local P = ARGV[1]

-- The member a queue head has in its `due` set: zero-padded arrival sequence, then the customer.
-- Equal scores sort by member, so heads due at the same moment come out in arrival order; the
-- customer is everything after the 21st character, whatever it contains.
local function member(seq, customer)
  return string.format('%020d', tonumber(seq)) .. '|' .. customer
end

-- The `due` member of a queue's head and the head's key, or nil when the queue is empty.
local function head_of(queue, customer)
  local head = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
  if head[1] == nil then return nil end
  return member(head[2], customer), head[1]
end

-- When an item can next be handed out: its retry time, or the end of its lease if that is later.
-- Returns the stored string itself, never a Lua number (tostring would round to 14 digits).
local function ready_at(item)
  local at = redis.call('HMGET', item, 'next_attempt_at', 'lease_until')
  if at[2] and tonumber(at[2]) > tonumber(at[1]) then return at[2] end
  return at[1]
end

-- After a change to `customer`'s queue in `kind` ('inbox' or 'outbox'), make `due` hold its
-- current head, scored by ready_at; `before` is the head's member before the change (or nil).
local function sync_head(kind, customer, before)
  local after, head = head_of(P .. kind .. ':queue:' .. customer, customer)
  if before and before ~= after then redis.call('ZREM', P .. kind .. ':due', before) end
  if after then
    redis.call('ZADD', P .. kind .. ':due', ready_at(P .. kind .. ':item:' .. head), after)
  end
end

-- Record one inbox event unless its key was seen: 1 if new, 0 if not.
local function add_inbox_item(key, customer, event, now)
  local item = P .. 'inbox:item:' .. key
  -- The item itself is the dedupe record (SET NX semantics); it outlives handling until pruned.
  if redis.call('EXISTS', item) == 1 then return 0 end
  local seq = redis.call('INCR', P .. 'inbox:seq')
  redis.call('HSET', item, 'key', key, 'customer', customer, 'seq', seq, 'event', event,
    'state', 'pending', 'attempts', 0, 'received_at', now, 'next_attempt_at', now)
  local queue = P .. 'inbox:queue:' .. customer
  local before = head_of(queue, customer)
  redis.call('ZADD', queue, seq, key)
  sync_head('inbox', customer, before)
  return 1
end

-- Lease the head of a customer's inbox queue to `owner`; the leased item's hash, or nil.
local function claim_inbox_head(customer, now, lease_until, owner)
  local before, key = head_of(P .. 'inbox:queue:' .. customer, customer)
  if key == nil then return nil end
  local item = P .. 'inbox:item:' .. key
  -- Only the head, and only when due and not leased: a later event never overtakes one that
  -- is waiting for its retry or being handled.
  if tonumber(ready_at(item)) > tonumber(now) then return nil end
  if redis.call('HEXISTS', item, 'lease_owner') == 1 then
    -- Its holder stopped before settling it (the lease ran out): that was an attempt.
    redis.call('HINCRBY', item, 'attempts', 1)
    redis.call('HSET', item, 'last_error', LEASE_RAN_OUT)
  end
  redis.call('HSET', item, 'lease_owner', owner, 'lease_until', lease_until)
  sync_head('inbox', customer, before)
  return redis.call('HGETALL', item)
end
"""

# The reason recorded on an event taken over from a lease that ran out (see LEASE_RAN_OUT).
_PRELUDE = _PRELUDE.replace(
    "local P = ARGV[1]\n",
    f"local P = ARGV[1]\nlocal LEASE_RAN_OUT = {json.dumps(LEASE_RAN_OUT)}\n",
    1,
)

_SCRIPTS: dict[str, str] = {
    # ARGV: prefix, now, then (key, customer, event JSON) per item. Returns 1 (new) or 0 per item.
    "inbox_add": """
local now = ARGV[2]
local added = {}
for i = 3, #ARGV, 3 do
  added[#added + 1] = add_inbox_item(ARGV[i], ARGV[i + 1], ARGV[i + 2], now)
end
return added
""",
    # ARGV: prefix, customer, now, lease_until, owner. Returns the leased item or nil.
    "inbox_claim": """
return claim_inbox_head(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
""",
    # ARGV: prefix, now, lease_until, owner, then (key, customer, event JSON) per item. Records
    # like inbox_add, then claims like inbox_claim for the customer of the first new item.
    # Returns {flags (1 new, 0 seen), the leased item or nothing}.
    "inbox_add_claim": """
local now, lease_until, owner = ARGV[2], ARGV[3], ARGV[4]
local added, first = {}, nil
for i = 5, #ARGV, 3 do
  local flag = add_inbox_item(ARGV[i], ARGV[i + 1], ARGV[i + 2], now)
  added[#added + 1] = flag
  if flag == 1 and first == nil then first = ARGV[i + 1] end
end
local reply = {added}
if first then
  local leased = claim_inbox_head(first, now, lease_until, owner)
  if leased then reply[2] = leased end
end
return reply
""",
    # ARGV: prefix, key, owner. Returns how many events the customer has pending after it, or
    # -1 when `owner` does not hold the lease (nothing changed).
    "inbox_complete": """
local key, owner = ARGV[2], ARGV[3]
local item = P .. 'inbox:item:' .. key
local f = redis.call('HMGET', item, 'state', 'lease_owner', 'customer', 'received_at')
-- Only the lease owner settles: a worker whose lease expired and was taken over is ignored.
if f[1] ~= 'pending' or f[2] ~= owner then return -1 end
local queue = P .. 'inbox:queue:' .. f[3]
local before = head_of(queue, f[3])
redis.call('HSET', item, 'state', 'done')
redis.call('HINCRBY', item, 'attempts', 1)
redis.call('HDEL', item, 'lease_owner', 'lease_until')
redis.call('ZREM', queue, key)
redis.call('ZADD', P .. 'inbox:done', f[4], key)
sync_head('inbox', f[3], before)
return redis.call('ZCARD', queue)
""",
    # ARGV: prefix, key, owner, lease_until. Returns 1 if renewed, 0 if `owner` lost the lease.
    "inbox_renew": """
local key, owner, lease_until = ARGV[2], ARGV[3], ARGV[4]
local item = P .. 'inbox:item:' .. key
local f = redis.call('HMGET', item, 'state', 'lease_owner', 'customer')
if f[1] ~= 'pending' or f[2] ~= owner then return 0 end
local before = head_of(P .. 'inbox:queue:' .. f[3], f[3])
redis.call('HSET', item, 'lease_until', lease_until)
sync_head('inbox', f[3], before)
return 1
""",
    # ARGV: prefix, key, owner, error, retry_at ('' dead-letters the event).
    "inbox_fail": """
local key, owner, err, retry_at = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local item = P .. 'inbox:item:' .. key
local f = redis.call('HMGET', item, 'state', 'lease_owner', 'customer', 'seq')
if f[1] ~= 'pending' or f[2] ~= owner then return 0 end
local queue = P .. 'inbox:queue:' .. f[3]
local before = head_of(queue, f[3])
redis.call('HINCRBY', item, 'attempts', 1)
redis.call('HSET', item, 'last_error', err)
redis.call('HDEL', item, 'lease_owner', 'lease_until')
if retry_at ~= '' then
  -- It stays the head, so the customer's later events wait behind its retry.
  redis.call('HSET', item, 'next_attempt_at', retry_at)
else
  -- Dead letters leave the queue: they no longer block the events after them.
  redis.call('HSET', item, 'state', 'dead')
  redis.call('ZREM', queue, key)
  redis.call('ZADD', P .. 'inbox:dead', f[4], key)
end
sync_head('inbox', f[3], before)
return 1
""",
    # ARGV: prefix, key, now. Returns 1 if the event was dead and is back in its queue.
    "inbox_replay": """
local key, now = ARGV[2], ARGV[3]
local item = P .. 'inbox:item:' .. key
local f = redis.call('HMGET', item, 'state', 'customer', 'seq')
if f[1] ~= 'dead' then return 0 end
local queue = P .. 'inbox:queue:' .. f[2]
local before = head_of(queue, f[2])
redis.call('HSET', item, 'state', 'pending', 'attempts', 0, 'next_attempt_at', now)
redis.call('ZREM', P .. 'inbox:dead', key)
-- Back at its original place by arrival, which may make it the head again.
redis.call('ZADD', queue, f[3], key)
sync_head('inbox', f[2], before)
return 1
""",
    # ARGV: prefix, before, batch size. Deletes up to a batch of handled events received before
    # `before`; returns how many.
    "inbox_prune": """
local keys = redis.call('ZRANGEBYSCORE', P .. 'inbox:done', '-inf', '(' .. ARGV[2],
  'LIMIT', 0, ARGV[3])
for _, key in ipairs(keys) do
  redis.call('DEL', P .. 'inbox:item:' .. key)
  redis.call('ZREM', P .. 'inbox:done', key)
end
return #keys
""",
    # ARGV: prefix, index set, item key family, limit. The items of an index set, oldest first.
    "list": """
local ids = redis.call('ZRANGE', P .. ARGV[2], 0, tonumber(ARGV[4]) - 1)
local items = {}
for i, id in ipairs(ids) do items[i] = redis.call('HGETALL', P .. ARGV[3] .. id) end
return items
""",
    # ARGV: prefix, message id, status, its rank, at, then has_recipient, recipient,
    # has_callback_data, callback_data, and the update's errors as JSON. Returns the record's hash
    # and its errors.
    "record_status": """
local record, errors = P .. 'status:' .. ARGV[2], P .. 'status-errors:' .. ARGV[2]
local status, rank = ARGV[3], tonumber(ARGV[4])
local stored_rank = redis.call('HGET', record, 'rank')
-- A status never goes back to a lower rank, so out-of-order webhooks (read before delivered)
-- leave the right answer; `failed` outranks everything. The first status is taken as it is.
if not stored_rank or rank > tonumber(stored_rank) then
  redis.call('HSET', record, 'status', status, 'rank', rank)
end
-- Every status keeps the time it first arrived.
redis.call('HSETNX', record, 'at:' .. status, ARGV[5])
-- Recipient and callback data: the first non-empty value wins (Python's `current or update`).
local function keep_first(field, has, value)
  local current = redis.call('HGET', record, field)
  if current and current ~= '' then return end
  if has == '1' then redis.call('HSET', record, field, value) else redis.call('HDEL', record, field) end
end
keep_first('recipient', ARGV[6], ARGV[7])
keep_first('callback_data', ARGV[8], ARGV[9])
for i = 10, #ARGV do redis.call('RPUSH', errors, ARGV[i]) end
-- Index the record by its latest status, for pruning (the stored string, never a Lua number).
local latest = redis.call('ZSCORE', P .. 'status-times', ARGV[2])
if not latest or tonumber(ARGV[5]) > tonumber(latest) then
  redis.call('ZADD', P .. 'status-times', ARGV[5], ARGV[2])
end
return {redis.call('HGETALL', record), redis.call('LRANGE', errors, 0, -1)}
""",
    # ARGV: prefix, before, batch size. Deletes up to a batch of delivery records whose latest
    # status is dated before `before`; returns how many.
    "status_prune": """
local index = P .. 'status-times'
local ids = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('DEL', P .. 'status:' .. id, P .. 'status-errors:' .. id)
  redis.call('ZREM', index, id)
end
return #ids
""",
    # ARGV: prefix, then sections, each a count followed by that many fixed-width rows:
    #   save (id, expected version, data JSON), delete (id), index set (key, customer id),
    #   index delete (key), deadline set (customer id, at), deadline clear (customer id),
    #   handoff (code, record JSON), handoff used (code),
    #   outbox (id, customer, channel, business id, message JSON, created at).
    # Returns nil, or {id, stored version, expected version} of the first stale document, or
    # {'handoff'} when a used handoff code is gone (and then nothing is written).
    "commit": """
local pos = 1
local function take() pos = pos + 1; return ARGV[pos] end
local function rows(width)
  local out = {}
  for r = 1, tonumber(take()) do
    local row = {}
    for c = 1, width do row[c] = take() end
    out[r] = row
  end
  return out
end
local saves = rows(3)
local deletes = rows(1)
local index_set = rows(2)
local index_delete = rows(1)
local deadline_set = rows(2)
local deadline_clear = rows(1)
local handoffs = rows(2)
local handoffs_used = rows(1)
local outbox = rows(6)

-- Check every expected version before writing anything: Redis does not roll a script back, so
-- the all-or-nothing guarantee rests on this loop coming first and on no later call failing.
for _, s in ipairs(saves) do
  local stored = redis.call('HGET', P .. 'doc:' .. s[1], 'version') or '0'
  if tonumber(stored) ~= tonumber(s[2]) then return {s[1], stored, s[2]} end
end
-- A handoff code is single-use: one that another commit used meanwhile fails this one (a code
-- stored by this very commit counts as there).
local stored_now = {}
for _, h in ipairs(handoffs) do stored_now[h[1]] = true end
for _, h in ipairs(handoffs_used) do
  if not stored_now[h[1]] and redis.call('HEXISTS', P .. 'handoffs', h[1]) == 0 then
    return {'handoff'}
  end
end
for _, s in ipairs(saves) do
  redis.call('HSET', P .. 'doc:' .. s[1], 'data', s[3], 'version', tonumber(s[2]) + 1)
end
-- In the order of the other stores: a commit that deletes a customer and sets its deadline ends
-- with the deadline set, and a handoff code both stored and used ends deleted.
for _, d in ipairs(deletes) do
  redis.call('DEL', P .. 'doc:' .. d[1])
  redis.call('ZREM', P .. 'deadlines', d[1])
end
for _, e in ipairs(index_set) do redis.call('HSET', P .. 'index', e[1], e[2]) end
for _, e in ipairs(index_delete) do redis.call('HDEL', P .. 'index', e[1]) end
for _, e in ipairs(deadline_set) do redis.call('ZADD', P .. 'deadlines', e[2], e[1]) end
for _, e in ipairs(deadline_clear) do redis.call('ZREM', P .. 'deadlines', e[1]) end
for _, h in ipairs(handoffs) do redis.call('HSET', P .. 'handoffs', h[1], h[2]) end
for _, h in ipairs(handoffs_used) do redis.call('HDEL', P .. 'handoffs', h[1]) end
for _, o in ipairs(outbox) do
  local id, customer = o[1], o[2]
  local item = P .. 'outbox:item:' .. id
  -- Ids are idempotency keys: a message already queued (or sent, or parked) is not queued again.
  if redis.call('EXISTS', item) == 0 then
    local seq = redis.call('INCR', P .. 'outbox:seq')
    redis.call('HSET', item, 'id', id, 'customer', customer, 'seq', seq, 'channel', o[3],
      'business_id', o[4], 'message', o[5], 'state', 'pending', 'attempts', 0,
      'created_at', o[6], 'next_attempt_at', o[6])
    local queue = P .. 'outbox:queue:' .. customer
    local before = head_of(queue, customer)
    redis.call('ZADD', queue, seq, id)
    redis.call('ZADD', P .. 'outbox:pending', seq, id)
    sync_head('outbox', customer, before)
  end
end
return nil
""",
    # ARGV: prefix, key, owner, now, until, ttl in milliseconds. Returns 1 if taken.
    "lock_acquire": """
local lock, owner = P .. 'lock:' .. ARGV[2], ARGV[3]
local held = redis.call('HMGET', lock, 'owner', 'until')
-- Expiry is judged by the caller's clock, like the other stores (so a test clock works).
if held[1] and held[1] ~= owner and tonumber(held[2]) > tonumber(ARGV[4]) then return 0 end
redis.call('HSET', lock, 'owner', owner, 'until', ARGV[5])
-- The key's own TTL is only a backstop, so locks of crashed workers do not pile up in Redis.
redis.call('PEXPIRE', lock, ARGV[6])
return 1
""",
    # ARGV: prefix, key, owner.
    "lock_release": """
local lock = P .. 'lock:' .. ARGV[2]
if redis.call('HGET', lock, 'owner') == ARGV[3] then redis.call('DEL', lock) end
return 0
""",
    # ARGV: prefix, now, lease_until, owner, limit. Returns the leased items, each as one JSON
    # object of its fields (all strings, so cjson keeps them exact): one reply string per item
    # instead of thirty, which redis-py parses in Python.
    "outbox_claim": """
local now, lease_until, owner = ARGV[2], ARGV[3], ARGV[4]
-- Every member of `due` is a head; those scored at or before now are due and not leased.
local heads = redis.call('ZRANGEBYSCORE', P .. 'outbox:due', '-inf', now, 'LIMIT', 0, ARGV[5])
local claimed = {}
for _, m in ipairs(heads) do
  local customer = string.sub(m, 22)
  local id = redis.call('ZRANGE', P .. 'outbox:queue:' .. customer, 0, 0)[1]
  if id then
    local item = P .. 'outbox:item:' .. id
    redis.call('HSET', item, 'lease_owner', owner, 'lease_until', lease_until)
    -- The head stays in `due`, rescored to its lease's end: a crashed worker's message comes back.
    redis.call('ZADD', P .. 'outbox:due', ready_at(item), m)
    local flat, fields = redis.call('HGETALL', item), {}
    for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
    claimed[#claimed + 1] = cjson.encode(fields)
  else
    -- Never happens while only these scripts write; if someone deleted a queue by hand, heal
    -- the index rather than fail halfway through a claim.
    redis.call('ZREM', P .. 'outbox:due', m)
  end
end
return claimed
""",
    # ARGV: prefix, owner, then (id, sent at, has_message_id, message_id) per message. Returns
    # how many of them the owner still held.
    "outbox_complete": """
local owner = ARGV[2]
local completed = 0
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  local item = P .. 'outbox:item:' .. id
  local f = redis.call('HMGET', item, 'state', 'lease_owner', 'customer')
  -- Only the lease owner settles: a worker whose lease expired and was taken over is ignored.
  if f[1] == 'pending' and f[2] == owner then
    local queue = P .. 'outbox:queue:' .. f[3]
    local before = head_of(queue, f[3])
    redis.call('HSET', item, 'state', 'sent', 'sent_at', ARGV[i + 1])
    if ARGV[i + 2] == '1' then
      redis.call('HSET', item, 'message_id', ARGV[i + 3])
    else
      redis.call('HDEL', item, 'message_id')
    end
    redis.call('HINCRBY', item, 'attempts', 1)
    redis.call('HDEL', item, 'lease_owner', 'lease_until')
    redis.call('ZREM', queue, id)
    redis.call('ZREM', P .. 'outbox:pending', id)
    -- Sent messages are indexed by when they went out: listed in that order, pruned by age.
    redis.call('ZADD', P .. 'outbox:sent', ARGV[i + 1], id)
    sync_head('outbox', f[3], before)
    completed = completed + 1
  end
end
return completed
""",
    # ARGV: prefix, lease_until, owner, then the ids. Returns the ids whose lease `owner` held.
    "outbox_renew": """
local lease_until, owner = ARGV[2], ARGV[3]
local renewed = {}
for i = 4, #ARGV do
  local item = P .. 'outbox:item:' .. ARGV[i]
  local f = redis.call('HMGET', item, 'state', 'lease_owner', 'customer')
  if f[1] == 'pending' and f[2] == owner then
    local before = head_of(P .. 'outbox:queue:' .. f[3], f[3])
    redis.call('HSET', item, 'lease_until', lease_until)
    sync_head('outbox', f[3], before)
    renewed[#renewed + 1] = ARGV[i]
  end
end
return renewed
""",
    # ARGV: prefix, id, owner, error, retry_at ('' parks the message).
    "outbox_fail": """
local id, owner, err, retry_at = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local item = P .. 'outbox:item:' .. id
local f = redis.call('HMGET', item, 'state', 'lease_owner', 'customer', 'seq')
if f[1] ~= 'pending' or f[2] ~= owner then return 0 end
local queue = P .. 'outbox:queue:' .. f[3]
local before = head_of(queue, f[3])
redis.call('HINCRBY', item, 'attempts', 1)
redis.call('HSET', item, 'last_error', err)
redis.call('HDEL', item, 'lease_owner', 'lease_until')
if retry_at ~= '' then
  -- It stays the head: the customer's later messages wait for its retry, keeping their order.
  redis.call('HSET', item, 'next_attempt_at', retry_at)
else
  -- Parked messages leave the queue and no longer hold back the ones after them.
  redis.call('HSET', item, 'state', 'parked')
  redis.call('ZREM', queue, id)
  redis.call('ZREM', P .. 'outbox:pending', id)
  redis.call('ZADD', P .. 'outbox:parked', f[4], id)
end
sync_head('outbox', f[3], before)
return 1
""",
    # ARGV: prefix, id, now. Returns 1 if the message was parked and is back in its queue.
    "outbox_retry": """
local id = ARGV[2]
local item = P .. 'outbox:item:' .. id
local f = redis.call('HMGET', item, 'state', 'customer', 'seq')
if f[1] ~= 'parked' then return 0 end
local queue = P .. 'outbox:queue:' .. f[2]
local before = head_of(queue, f[2])
redis.call('HSET', item, 'state', 'pending', 'next_attempt_at', ARGV[3])
redis.call('ZREM', P .. 'outbox:parked', id)
redis.call('ZADD', P .. 'outbox:pending', f[3], id)
-- Back at its original place by sequence, which may make it the head again.
redis.call('ZADD', queue, f[3], id)
sync_head('outbox', f[2], before)
return 1
""",
    # ARGV: prefix, sent_before, parked_before, batch size. Deletes up to a batch of messages sent
    # before `sent_before`, then of parked messages created before `parked_before`; returns how
    # many.
    "outbox_prune": """
local limit = tonumber(ARGV[4])
local sent = redis.call('ZRANGEBYSCORE', P .. 'outbox:sent', '-inf', '(' .. ARGV[2],
  'LIMIT', 0, limit)
for _, id in ipairs(sent) do
  redis.call('DEL', P .. 'outbox:item:' .. id)
  redis.call('ZREM', P .. 'outbox:sent', id)
end
local pruned = #sent
if pruned < limit then
  -- Parked messages are few, and indexed by arrival, which need not follow creation (workers'
  -- clocks differ, and a message is stamped before its commit): look at every one.
  local parked = redis.call('ZRANGE', P .. 'outbox:parked', 0, -1)
  for _, id in ipairs(parked) do
    if pruned >= limit then break end
    local created = redis.call('HGET', P .. 'outbox:item:' .. id, 'created_at')
    if not created or tonumber(created) < tonumber(ARGV[3]) then
      redis.call('DEL', P .. 'outbox:item:' .. id)
      redis.call('ZREM', P .. 'outbox:parked', id)
      pruned = pruned + 1
    end
  end
end
return pruned
""",
}


# -- conversions ----------------------------------------------------------------------------------
# redis-py types replies as ``bytes | str`` (``str`` with ``decode_responses=True``) and script
# replies as ``Any``; these helpers turn them into text, so a client in either mode works.


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(flat: Any) -> dict[str, str]:
    """A hash as a script returns it (``HGETALL``: field, value, field, value, …)."""
    values = [_text(value) for value in flat]
    return dict(zip(values[::2], values[1::2], strict=True))


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: str | float) -> datetime:
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def _opt_dt(value: str | None) -> datetime | None:
    return None if value is None else _dt(value)


def _inbox_item(fields: dict[str, str]) -> InboxItem:
    state: InboxState = fields["state"]  # type: ignore[assignment]  # written only by the scripts
    return InboxItem(
        key=fields["key"],
        customer=fields["customer"],
        seq=int(fields["seq"]),
        event=json.loads(fields["event"]),
        state=state,
        attempts=int(fields["attempts"]),
        received_at=_dt(fields["received_at"]),
        next_attempt_at=_dt(fields["next_attempt_at"]),
        last_error=fields.get("last_error"),
        lease_owner=fields.get("lease_owner"),
        lease_until=_opt_dt(fields.get("lease_until")),
    )


def _outbox_item(fields: dict[str, str]) -> OutboxItem:
    state: OutboxState = fields["state"]  # type: ignore[assignment]  # written only by the scripts
    return OutboxItem(
        id=fields["id"],
        customer=fields["customer"],
        seq=int(fields["seq"]),
        channel=fields["channel"],
        business_id=fields["business_id"],
        message=json.loads(fields["message"]),
        state=state,
        attempts=int(fields["attempts"]),
        created_at=_dt(fields["created_at"]),
        next_attempt_at=_dt(fields["next_attempt_at"]),
        last_error=fields.get("last_error"),
        message_id=fields.get("message_id"),
        sent_at=_opt_dt(fields.get("sent_at")),
        lease_owner=fields.get("lease_owner"),
        lease_until=_opt_dt(fields.get("lease_until")),
    )


def _message_record(
    message_id: str, fields: dict[str, str], errors: Iterable[Any]
) -> MessageRecord:
    return MessageRecord(
        message_id=message_id,
        status=fields["status"],
        statuses={name[3:]: _dt(at) for name, at in fields.items() if name.startswith("at:")},
        recipient=fields.get("recipient"),
        errors=[json.loads(_text(error)) for error in errors],
        callback_data=fields.get("callback_data"),
    )


def _optional(value: str | None) -> tuple[str, str]:
    """A nullable script argument: a presence flag and the value."""
    return ("0", "") if value is None else ("1", value)


class RedisStore:
    """A store in Redis: ``RedisStore("redis://localhost:6379/0")`` or ``RedisStore(client)``.

    ``url_or_client`` is a ``redis://``/``rediss://``/``unix://`` URL (the store makes a client and
    :meth:`close` closes it) or a ``redis.asyncio.Redis`` you made (the store never closes it; with
    ``decode_responses`` on or off). Keys are named under ``prefix``, so several apps (or tests)
    can share a database. Every method is atomic across processes; see :mod:`waflow.store.redis`
    for the layout. Raises :class:`~waflow.errors.ConfigError` when the ``redis`` package is
    missing.
    """

    def __init__(self, url_or_client: str | Redis, *, prefix: str = "waflow:") -> None:
        try:
            from redis import asyncio as aioredis
        except ImportError as exc:
            raise ConfigError(
                "RedisStore needs the redis package: pip install 'waflow[redis]'"
            ) from exc
        self.prefix = prefix
        self._owns_client = isinstance(url_or_client, str)
        self._client: Redis = (
            aioredis.Redis.from_url(url_or_client)
            if isinstance(url_or_client, str)
            else url_or_client
        )
        self._scripts: dict[str, AsyncScript] = {
            name: self._client.register_script(_PRELUDE + body) for name, body in _SCRIPTS.items()
        }

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "waflow:") -> RedisStore:
        """A store with its own client for ``url`` (``redis://host:port/db``, ``rediss://…``)."""
        return cls(url, prefix=prefix)

    async def _script(self, name: str, *args: str | int | float) -> Any:
        # Script replies are Any in redis-py: each caller turns them into typed records at once.
        return await self._scripts[name](args=(self.prefix, *args))

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _list(self, index: str, family: str, limit: int) -> list[dict[str, str]]:
        if limit <= 0:  # ZRANGE 0 -1 would mean "everything"
            return []
        rows = await self._script("list", index, family, limit)
        return [_fields(row) for row in rows]

    # -- inbox ---------------------------------------------------------------------------------

    async def inbox_add(self, items: Sequence[NewInboxItem], now: datetime) -> list[bool]:
        """Record events atomically; for each, true if new, false if its key was seen before."""
        if not items:
            return []
        args: list[str | float] = [_ts(now)]
        for item in items:
            args += [item.key, item.customer, json.dumps(item.event)]
        added = await self._script("inbox_add", *args)
        return [bool(flag) for flag in added]

    async def inbox_claim(
        self, customer: str, now: datetime, lease_seconds: float, owner: str
    ) -> InboxItem | None:
        """Lease the customer's oldest pending event if it is due and not leased; else ``None``."""
        until = _ts(now) + lease_seconds
        leased = await self._script("inbox_claim", customer, _ts(now), until, owner)
        return None if leased is None else _inbox_item(_fields(leased))

    async def inbox_add_claim(
        self, items: Sequence[NewInboxItem], now: datetime, lease_seconds: float, owner: str
    ) -> tuple[list[bool], InboxItem | None]:
        """Record events and lease the first new item's customer's head to ``owner``: one script."""
        if not items:
            return [], None
        args: list[str | float] = [_ts(now), _ts(now) + lease_seconds, owner]
        for item in items:
            args += [item.key, item.customer, json.dumps(item.event)]
        reply = await self._script("inbox_add_claim", *args)
        added = [bool(flag) for flag in reply[0]]
        return added, _inbox_item(_fields(reply[1])) if len(reply) > 1 else None

    async def inbox_complete(self, key: str, owner: str) -> bool | None:
        """Mark a leased event handled (a no-op unless ``owner`` holds its lease); whether the
        customer has more pending events (``None`` when the lease was not ``owner``'s)."""
        pending = int(await self._script("inbox_complete", key, owner))
        return None if pending < 0 else pending > 0

    async def inbox_renew(self, key: str, owner: str, until: datetime) -> bool:
        """Move the end of ``owner``'s lease on a pending event; false if it lost the lease."""
        return bool(await self._script("inbox_renew", key, owner, _ts(until)))

    async def inbox_fail(self, key: str, owner: str, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt: retry at ``retry_at``, or dead-letter it when ``None``."""
        retry = "" if retry_at is None else _ts(retry_at)
        await self._script("inbox_fail", key, owner, error, retry)

    async def inbox_due_customers(self, now: datetime, limit: int = 100) -> list[str]:
        """Customers with a pending event that is due: due longest first, then by arrival."""
        if limit <= 0:
            return []
        heads = await self._client.zrangebyscore(
            self._key("inbox", "due"), "-inf", _ts(now), start=0, num=limit
        )
        return [_text(head)[21:] for head in heads]

    async def inbox_get(self, key: str) -> InboxItem | None:
        """One recorded event by key."""
        fields = await self._client.hgetall(self._key("inbox", "item", key))
        return _inbox_item({_text(k): _text(v) for k, v in fields.items()}) if fields else None

    async def inbox_dead(self, limit: int = 100) -> list[InboxItem]:
        """Dead-lettered events, oldest first."""
        return [_inbox_item(row) for row in await self._list("inbox:dead", "inbox:item:", limit)]

    async def inbox_replay(self, key: str, now: datetime) -> bool:
        """Put a dead-lettered event back in line (attempts reset); false if it is not dead."""
        return bool(await self._script("inbox_replay", key, _ts(now)))

    async def inbox_prune(self, before: datetime) -> int:
        """Forget handled events received before ``before``; return how many.

        Deletes in batches of :data:`PRUNE_BATCH`, each atomic, so a large prune never blocks
        Redis for long; handled events never come back, so stopping between batches is harmless.
        """
        return await self._prune("inbox_prune", _ts(before))

    async def _prune(self, script: str, *args: str | float) -> int:
        """Run a prune script batch after batch until one deletes less than a full batch."""
        pruned = 0
        while True:
            count = int(await self._script(script, *args, PRUNE_BATCH))
            pruned += count
            if count < PRUNE_BATCH:
                return pruned

    # -- message statuses ----------------------------------------------------------------------

    async def record_status(self, update: StatusUpdate) -> MessageRecord:
        """Apply a status webhook to the record of the sent message (ranks never go back)."""
        fields, errors = await self._script(
            "record_status",
            update.message_id,
            update.status,
            STATUS_RANK.get(update.status, 0),
            _ts(update.at),
            *_optional(update.recipient),
            *_optional(update.callback_data),
            *(json.dumps(error) for error in update.errors),
        )
        return _message_record(update.message_id, _fields(fields), errors)

    async def message_record(self, message_id: str) -> MessageRecord | None:
        """The delivery record of a sent message."""
        async with self._client.pipeline(transaction=True) as pipe:  # MULTI: one consistent read
            pipe.hgetall(self._key("status", message_id))
            pipe.lrange(self._key("status-errors", message_id), 0, -1)
            fields, errors = await pipe.execute()
        if not fields:
            return None
        return _message_record(message_id, {_text(k): _text(v) for k, v in fields.items()}, errors)

    async def status_prune(self, before: datetime) -> int:
        """Forget delivery records whose latest status is dated before ``before``; return how
        many (in batches of :data:`PRUNE_BATCH`, like :meth:`inbox_prune`)."""
        return await self._prune("status_prune", _ts(before))

    # -- customers, index, handoff codes, deadlines --------------------------------------------

    async def document_get(self, customer_id: str) -> Document | None:
        """A customer document by id."""
        data, version = await self._client.hmget(self._key("doc", customer_id), ["data", "version"])
        if data is None or version is None:
            return None
        return Document(customer_id, json.loads(data), int(version))

    async def documents_get(self, customer_ids: Sequence[str]) -> dict[str, Document]:
        """Customer documents by id, in one round trip (a pipeline of HMGETs)."""
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for customer_id in ids:
                pipe.hmget(self._key("doc", customer_id), ["data", "version"])
            answers = await pipe.execute()
        return {
            customer_id: Document(customer_id, json.loads(data), int(version))
            for customer_id, (data, version) in zip(ids, answers, strict=True)
            if data is not None and version is not None
        }

    async def index_lookup(self, keys: Sequence[str]) -> dict[str, str]:
        """The customer ids of those channel-id ``keys`` that are known."""
        if not keys:
            return {}
        found = await self._client.hmget(self._key("index"), list(keys))
        return {
            key: _text(owner) for key, owner in zip(keys, found, strict=True) if owner is not None
        }

    async def handoff_get(self, code: str) -> dict[str, Any] | None:
        """A handoff code's record, or ``None``."""
        record = await self._client.hget(self._key("handoffs"), code)
        return None if record is None else dict(json.loads(record))

    async def deadlines_due(self, now: datetime, limit: int = 100) -> list[tuple[str, datetime]]:
        """``(customer_id, deadline)`` pairs due at ``now``, earliest first."""
        if limit <= 0:
            return []
        due = await self._client.zrangebyscore(
            self._key("deadlines"), "-inf", _ts(now), start=0, num=limit, withscores=True
        )
        # redis-py's return type covers every form of the command; with scores it is pairs.
        pairs = cast("list[tuple[bytes | str, float]]", due)
        return [(_text(customer), _dt(at)) for customer, at in pairs]

    async def commit(self, change: Commit) -> None:
        """Apply a unit of work atomically (see :class:`~waflow.store.base.Commit`).

        Raises :class:`~waflow.errors.ConcurrentUpdateError`, having applied nothing, when a saved
        document's stored version is not the one it was loaded at.
        """
        args: list[str | int | float] = []

        def section(rows: Sequence[Sequence[str | int | float]]) -> None:
            args.append(len(rows))
            for row in rows:
                args.extend(row)

        # JSON is encoded here, in Python: Lua's cjson would round floats and turn [] into {}.
        section([(d.id, d.version, json.dumps(d.data)) for d in change.save])
        section([(customer_id,) for customer_id in change.delete])
        section([(k, owner) for k, owner in change.index.items() if owner is not None])
        section([(k,) for k, owner in change.index.items() if owner is None])
        section([(c, _ts(at)) for c, at in change.deadlines.items() if at is not None])
        section([(c,) for c, at in change.deadlines.items() if at is None])
        section([(str(record["code"]), json.dumps(record)) for record in change.handoffs])
        section([(code,) for code in change.handoffs_used])
        section(
            [
                (
                    new.id,
                    new.customer,
                    new.channel,
                    new.business_id,
                    json.dumps(new.message),
                    _ts(new.created_at),
                )
                for new in change.outbox
            ]
        )
        stale = await self._script("commit", *args)
        if stale is not None:
            if len(stale) == 1:
                raise ConcurrentUpdateError(USED_HANDOFF)
            customer_id, stored, expected = (_text(value) for value in stale)
            raise ConcurrentUpdateError(
                f"customer {customer_id} is at version {stored}, not {expected}"
            )

    # -- locks ---------------------------------------------------------------------------------

    async def lock_acquire(self, key: str, owner: str, ttl_seconds: float, now: datetime) -> bool:
        """Take the lock ``key`` for ``owner`` until ``now + ttl`` unless someone else holds it.

        Expiry follows the caller's ``now`` like the other stores; the Redis key also expires
        after ``ttl_seconds`` of server time, so a crashed worker's lock does not linger.
        """
        ttl_ms = max(1, int(ttl_seconds * 1000) + 1)  # rounded up: never before the logical expiry
        until = _ts(now) + ttl_seconds
        return bool(await self._script("lock_acquire", key, owner, _ts(now), until, ttl_ms))

    async def lock_release(self, key: str, owner: str) -> None:
        """Release a lock held by ``owner`` (a no-op otherwise)."""
        await self._script("lock_release", key, owner)

    # -- outbox --------------------------------------------------------------------------------

    async def outbox_claim(
        self, now: datetime, lease_seconds: float, owner: str, limit: int = 50
    ) -> list[OutboxItem]:
        """Lease the head message of up to ``limit`` customers whose head is due.

        Only heads are handed out, so each customer's messages go out in order. Those due longest
        come first (ties in sequence order); ``O(log n)`` per claimed message.
        """
        if limit <= 0:
            return []
        until = _ts(now) + lease_seconds
        rows = await self._script("outbox_claim", _ts(now), until, owner, limit)
        return [_outbox_item(json.loads(row)) for row in rows]

    async def outbox_complete(
        self, item_id: str, owner: str, message_id: str | None, now: datetime
    ) -> None:
        """Mark a leased message sent (a no-op unless ``owner`` holds its lease)."""
        await self.outbox_complete_many([OutboxCompletion(item_id, message_id, now)], owner)

    async def outbox_complete_many(
        self, completions: Sequence[OutboxCompletion], owner: str
    ) -> int:
        """Mark leased messages sent in one script run; return how many ``owner`` still held."""
        if not completions:
            return 0
        args: list[str | float] = [owner]
        for done in completions:
            args += [done.item_id, _ts(done.sent_at), *_optional(done.message_id)]
        return int(await self._script("outbox_complete", *args))

    async def outbox_renew(self, item_ids: Sequence[str], owner: str, until: datetime) -> list[str]:
        """Move the end of ``owner``'s leases on these messages; the ids renewed."""
        if not item_ids:
            return []
        renewed = await self._script("outbox_renew", _ts(until), owner, *item_ids)
        return [_text(item_id) for item_id in renewed]

    async def outbox_fail(
        self, item_id: str, owner: str, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed send: retry at ``retry_at``, or park it (``None``) with the reason."""
        retry = "" if retry_at is None else _ts(retry_at)
        await self._script("outbox_fail", item_id, owner, error, retry)

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        """One outbox message by id."""
        fields = await self._client.hgetall(self._key("outbox", "item", item_id))
        return _outbox_item({_text(k): _text(v) for k, v in fields.items()}) if fields else None

    async def outbox_list(self, state: OutboxState, limit: int = 100) -> list[OutboxItem]:
        """Messages in ``state``, oldest first."""
        if state not in ("pending", "sent", "parked"):  # no such index set (and `due` is not one)
            return []
        rows = await self._list(f"outbox:{state}", "outbox:item:", limit)
        return [_outbox_item(row) for row in rows]

    async def outbox_retry(self, item_id: str, now: datetime) -> bool:
        """Put a parked message back in line; false if it is not parked."""
        return bool(await self._script("outbox_retry", item_id, _ts(now)))

    async def outbox_prune(self, sent_before: datetime, parked_before: datetime) -> int:
        """Forget messages sent before ``sent_before`` and parked messages created before
        ``parked_before``; return how many (in batches of :data:`PRUNE_BATCH`)."""
        return await self._prune("outbox_prune", _ts(sent_before), _ts(parked_before))

    async def close(self) -> None:
        """Close the client this store made from a URL (a client passed in stays open)."""
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"
