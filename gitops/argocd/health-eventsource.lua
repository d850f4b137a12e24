-- Argo CD health of a Lambdalet EventSource (lambdalet.dev/v1alpha1), read from the Ready
-- condition the operator writes (operator/lambdalet/controller/eventsources/status.py);
-- kstatus-like. Lua 5.1, as Argo CD's gopher-lua runs it; Argo CD sets `obj` and takes the table
-- this returns.
--   no status, or one of an older generation   Progressing  waiting for the operator
--   Ready True, reason in SUSPENDED (Paused)    Suspended    spec.enabled: false
--   Ready True (Delivering)                     Healthy
--   Ready Unknown                               Progressing
--   Ready False, reason in PROGRESSING          Progressing  assigned; the dispatcher is starting
--   (Starting)                                               it
--   Ready False, any other reason               Degraded     FunctionNotFound, InvalidSchedule,
--                                                            NoDispatcher, SourceUnavailable,
--                                                            SourceMisconfigured,
--                                                            SecretNotFound, InvalidSpec
-- NoDispatcher is Degraded: no dispatcher replica holds a Lease (dispatcher disabled, scaled to
-- zero or crashing); right after an install it may show for the seconds before the first Lease.
-- SourceUnavailable is Degraded: the broker is down; the dispatcher keeps retrying, and the
-- health turns Healthy by itself when it is back.
local PROGRESSING = {Starting = true}
local SUSPENDED = {Paused = true}

local function ready_condition(status)
  if type(status) ~= "table" or type(status.conditions) ~= "table" then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

-- The status (or the condition) describes an older spec than the current one.
local function stale(metadata, status, condition)
  local generation = type(metadata) == "table" and metadata.generation or nil
  if generation == nil then
    return false
  end
  if status.observedGeneration == nil or status.observedGeneration < generation then
    return true
  end
  return condition.observedGeneration ~= nil and condition.observedGeneration < generation
end

local function said(condition, with_reason)
  local reason = condition.reason or ""
  local message = condition.message or ""
  if reason == "" or (not with_reason and message ~= "") then
    return message
  end
  if message == "" then
    return reason
  end
  return reason .. ": " .. message
end

local hs = {}
local condition = ready_condition(obj.status)
if condition == nil or stale(obj.metadata, obj.status, condition) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the current spec"
elseif condition.status == "True" and SUSPENDED[condition.reason or ""] then
  hs.status = "Suspended"
  hs.message = said(condition, true)
elseif condition.status == "True" then
  hs.status = "Healthy"
  hs.message = said(condition, false)
elseif condition.status == "False" and not PROGRESSING[condition.reason or ""] then
  hs.status = "Degraded"
  hs.message = said(condition, true)
else
  hs.status = "Progressing"
  hs.message = said(condition, true)
end
return hs
