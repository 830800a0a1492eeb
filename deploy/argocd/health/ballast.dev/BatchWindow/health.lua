-- Argo CD health check for ballast.dev/BatchWindow (Lua 5.1, as Argo CD runs it).
-- Healthy: Ready=True for the current generation. Progressing: the operator has
-- not reported on this generation yet, or it is retrying or waiting for another
-- object (Reconciling=True). Degraded: Ready=False (Stalled=True), with the
-- operator's reason and message. Source: deploy/argocd/health in Ballast.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or "Unknown"
  if c.message ~= nil and c.message ~= "" then
    return reason .. ": " .. c.message
  end
  return reason
end

local generation = obj.metadata.generation
local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ballast operator to report status"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ballast operator to observe generation " .. generation
    .. " (status is for generation " .. status.observedGeneration .. ")"
  return hs
end
local ready = condition(status, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition of generation " .. generation
  return hs
end
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
local reconciling = condition(status, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end
if ready.status == "True" then
  -- A closed window is healthy: closing is its job.
  hs.status = "Healthy"
  if status.open == true and status.currentWindowEnd ~= nil then
    hs.message = "Open until " .. status.currentWindowEnd
  elseif status.open == false and status.nextOpen ~= nil then
    hs.message = "Closed; opens at " .. status.nextOpen
  else
    hs.message = describe(ready)
  end
  return hs
end
if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
hs.status = "Progressing"
hs.message = describe(ready)
return hs
