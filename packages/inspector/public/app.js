// The inspector page: plain DOM, no build step. Every value from the API is written with
// textContent (never innerHTML), so message content cannot inject markup.
//
// When the source can follow sessions live (/api/info says `live`), the page listens to
// /api/events with an EventSource: deltas of the shown session grow its running turn in place,
// and kept events re-render the session list and the shown session (debounced).

const state = {
  info: null,
  sessions: [],
  sessionId: null,
  renderedSessionId: null,
  renderedTurnId: null,
  detail: null,
  turnId: null,
  /** turnId → what the model has streamed so far in its current reason step (shown session). */
  live: new Map(),
};

const DELTA_TYPES = new Set(['output.message.delta', 'reason.thinking.delta', 'tool.call.delta']);
/** Kept events after which the stored messages hold what the deltas showed. */
const SETTLING_TYPES = new Set([
  'output.message.completed',
  'reason.completed',
  'turn.completed',
  'turn.failed',
]);
const RENDER_DEBOUNCE_MS = 120;

/** Creates an element: h('div', { class: 'x', dataset: { testid: 'y' } }, child, 'text'). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text);
}

function time(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return `${date.toLocaleTimeString([], { hour12: false })}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

function statusKind(status) {
  if (status === 'completed' || status === 'idle') return 'ok';
  if (status === 'failed') return 'error';
  if (status === 'running' || status === 'active') return 'info';
  return 'warn';
}

async function api(path, options) {
  const response = await fetch(`api/${path}`, options);
  const body = await response.json();
  if (!response.ok) {
    const error = new Error(body.error?.message ?? `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return {
    sessionId: parts[0] === 'sessions' ? parts[1] || null : null,
    turnId: parts[2] === 'turns' ? parts[3] || null : null,
  };
}

function sessionHref(sessionId, turnId) {
  const base = `#/sessions/${encodeURIComponent(sessionId)}`;
  return turnId ? `${base}/turns/${encodeURIComponent(turnId)}` : base;
}

async function loadInfo() {
  state.info = await api('info');
  document.getElementById('source-label').textContent = state.info.label;
  const mode = document.getElementById('mode');
  mode.textContent = state.info.allowApprovals ? 'approvals enabled' : 'read-only';
  mode.className = `badge ${state.info.allowApprovals ? 'warn' : ''}`;
  mode.dataset.testid = 'mode';
}

async function loadSessions() {
  state.sessions = await api('sessions');
  const list = document.getElementById('session-list');
  list.replaceChildren(
    ...state.sessions.map((session) =>
      h(
        'li',
        {},
        h(
          'a',
          {
            href: sessionHref(session.id),
            class: session.id === state.sessionId ? 'selected' : '',
            dataset: { testid: 'session-link', sessionId: session.id },
          },
          h('div', { class: 'title' }, session.title || session.id),
          h(
            'div',
            {},
            badge(session.status, statusKind(session.status)),
            ' ',
            session.pendingApprovals > 0
              ? badge(`${session.pendingApprovals} pending approval`, 'warn')
              : null,
          ),
          h('div', { class: 'muted mono' }, session.id),
        ),
      ),
    ),
  );
}

let rendering = null;
let renderAgain = false;

/** Renders the list and the shown session; calls made while one runs coalesce into one more. */
function render() {
  if (rendering) {
    renderAgain = true;
    return rendering;
  }
  rendering = (async () => {
    try {
      do {
        renderAgain = false;
        await renderNow();
      } while (renderAgain);
    } finally {
      rendering = null;
    }
  })();
  return rendering;
}

async function renderNow() {
  const { sessionId, turnId } = parseHash();
  if (sessionId !== state.sessionId) state.live.clear();
  state.sessionId = sessionId;
  state.turnId = turnId;
  await loadSessions();
  const main = document.getElementById('main');
  if (!sessionId) {
    main.replaceChildren(h('p', { class: 'muted' }, 'Pick a session.'));
    return;
  }
  // Streamed text whose message was stored before this fetch is shown from the fetch instead.
  const settled = [...state.live].filter(([, entry]) => entry.settled).map(([id]) => id);
  let detail;
  try {
    detail = await api(`sessions/${encodeURIComponent(sessionId)}`);
  } catch (error) {
    main.replaceChildren(h('p', { class: 'error-text' }, error.message));
    return;
  }
  if (parseHash().sessionId !== sessionId) return;
  for (const id of settled) if (state.live.get(id)?.settled) state.live.delete(id);
  state.detail = detail;
  const sections = [
    sessionHeader(detail),
    approvalsSection(detail),
    turnsSection(detail),
    turnId ? shownContext(detail, sessionId, turnId) : null,
    hostPlanSection(detail),
    timelineSection(detail),
    filesSection(detail),
  ];
  // Live re-renders keep what the reader opened.
  const opened = new Set(
    [...main.querySelectorAll('details[open][data-key]')].map((node) => node.dataset.key),
  );
  main.replaceChildren(...sections.filter(Boolean));
  for (const node of main.querySelectorAll('details[data-key]')) {
    if (opened.has(node.dataset.key)) node.open = true;
  }
  const moved = sessionId !== state.renderedSessionId || turnId !== state.renderedTurnId;
  if (turnId && moved) document.getElementById('context')?.scrollIntoView();
  else if (sessionId !== state.renderedSessionId) window.scrollTo(0, 0);
  state.renderedSessionId = sessionId;
  state.renderedTurnId = turnId;
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered ?? 0) + 1);
}

function sessionHeader(detail) {
  const session = detail.session;
  return h(
    'section',
    { dataset: { testid: 'session-header' } },
    h(
      'h2',
      {},
      session.title || session.id,
      ' ',
      badge(session.status, statusKind(session.status)),
    ),
    h(
      'div',
      { class: 'muted mono' },
      `${session.id} · harness ${session.harnessId}${session.agentId ? ` · agent ${session.agentId}` : ''}`,
    ),
    session.parentSessionId
      ? h(
          'div',
          { class: 'muted', dataset: { testid: 'parent-session' } },
          'subagent of ',
          h('a', { href: sessionHref(session.parentSessionId) }, session.parentSessionId),
        )
      : null,
    detail.contextError
      ? h(
          'p',
          { class: 'error-text' },
          `Context unavailable: ${detail.contextError.code}: ${detail.contextError.message}`,
        )
      : null,
  );
}

function approvalsSection(detail) {
  const { pending, decided } = detail.approvals;
  if (pending.length === 0 && decided.length === 0) return null;
  const allowed = state.info?.allowApprovals === true;
  return h(
    'section',
    { dataset: { testid: 'approvals' } },
    h('h2', {}, 'File approvals'),
    allowed
      ? null
      : h(
          'p',
          { class: 'muted' },
          'Read-only: restart the inspector with --allow-approvals to decide these.',
        ),
    ...pending.map((entry) =>
      h(
        'div',
        { class: 'approval', dataset: { testid: 'pending-approval', approvalId: entry.id } },
        badge(entry.request.operation, 'warn'),
        h('code', {}, entry.request.path),
        entry.request.recursive ? badge('recursive') : null,
        h('span', { class: 'muted' }, `asked at ${time(entry.requestedAt)}`),
        h(
          'span',
          { class: 'actions' },
          h(
            'button',
            {
              type: 'button',
              class: 'primary',
              disabled: !allowed,
              title: allowed ? 'Let the operation run' : 'Approvals are disabled (read-only)',
              dataset: { testid: 'approve' },
              onclick: () => decide(entry.id, 'approve'),
            },
            'Approve',
          ),
          h(
            'button',
            {
              type: 'button',
              class: 'danger',
              disabled: !allowed,
              title: allowed ? 'Refuse the operation' : 'Approvals are disabled (read-only)',
              dataset: { testid: 'deny' },
              onclick: () => decide(entry.id, 'deny'),
            },
            'Deny',
          ),
        ),
      ),
    ),
    decided.length > 0
      ? h(
          'ul',
          { dataset: { testid: 'decided-approvals' } },
          ...decided.map((entry) =>
            h(
              'li',
              {},
              badge(entry.decision, entry.decision === 'approve' ? 'ok' : 'error'),
              ' ',
              `${entry.request.operation} `,
              h('code', {}, entry.request.path),
              h('span', { class: 'muted' }, ` at ${time(entry.decidedAt)}`),
            ),
          ),
        )
      : null,
  );
}

async function decide(approvalId, decision) {
  try {
    await api(`approvals/${encodeURIComponent(approvalId)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision }),
    });
  } catch (error) {
    alert(`Could not ${decision}: ${error.message}`);
  }
  await render();
  // The turn goes on after the decision; without live events, look again shortly.
  if (!state.info?.live) setTimeout(() => render(), 400);
}

function turnsSection(detail) {
  return h(
    'section',
    { dataset: { testid: 'turns' } },
    h('h2', {}, `Turns (${detail.turns.length})`),
    detail.turns.length === 0 ? h('p', { class: 'muted' }, 'No turn yet.') : null,
    ...detail.turns.map((turn) => turnCard(detail.session.id, turn)),
  );
}

function turnCard(sessionId, turn) {
  return h(
    'div',
    { class: 'turn', dataset: { testid: 'turn', turnId: turn.turnId } },
    h(
      'div',
      { class: 'head' },
      badge(turn.status, statusKind(turn.status)),
      turn.stopReason ? badge(turn.stopReason) : null,
      h('strong', {}, turn.input || '(no input text)'),
      h('span', { class: 'muted mono' }, turn.turnId),
      h(
        'a',
        { href: sessionHref(sessionId, turn.turnId), dataset: { testid: 'open-context' } },
        'Show context',
      ),
    ),
    h(
      'div',
      { class: 'muted' },
      `${turn.iterations} reason step(s) · ${turn.toolCalls.length} tool call(s) · ${turn.models.join(', ') || 'model ?'}`,
      turn.usage ? ` · ${usageText(turn.usage)}` : '',
      ` · ${time(turn.startedAt)}${turn.endedAt ? ` → ${time(turn.endedAt)}` : ''}`,
    ),
    turn.error
      ? h('p', { class: 'error-text' }, `${turn.error.code}: ${turn.error.message}`)
      : null,
    ...(turn.compactions ?? []).map((point) =>
      h(
        'p',
        {
          class: 'compaction',
          dataset: { testid: 'compaction-point', throughSeq: point.throughSeq },
        },
        badge('compacted', 'info'),
        ` ${compactionText(point)}`,
      ),
    ),
    turn.response
      ? h(
          'p',
          {},
          h('span', { class: 'muted' }, 'Response: '),
          h('span', { dataset: { testid: 'turn-response' } }, turn.response),
        )
      : null,
    turn.toolCalls.length > 0 ? toolCallTable(turn.toolCalls) : null,
    liveBlock(turn.turnId),
  );
}

/** What the model is streaming in a running turn's current reason step, or null. */
function liveBlock(turnId) {
  const entry = state.live.get(turnId);
  if (!entry) return null;
  return h(
    'div',
    { class: 'live', dataset: { testid: 'live', turnId } },
    badge('streaming', 'info'),
    entry.reasoning
      ? h(
          'div',
          {},
          h('span', { class: 'muted' }, 'Thinking: '),
          h('pre', { class: 'muted', dataset: { testid: 'live-reasoning' } }, entry.reasoning),
        )
      : null,
    entry.text
      ? h(
          'p',
          {},
          h('span', { class: 'muted' }, 'Answer so far: '),
          h('span', { dataset: { testid: 'live-answer' } }, entry.text),
        )
      : null,
    ...[...entry.tools].map(([id, tool]) =>
      h(
        'div',
        { dataset: { testid: 'live-tool-call', toolCallId: id } },
        badge('calling', 'info'),
        ' ',
        h('code', {}, tool.name || '(tool)'),
        h('span', { class: 'muted mono' }, ` ${id}`),
        h('pre', {}, tool.arguments),
      ),
    ),
  );
}

/** Adds one delta to its turn's live block and updates the block in place. */
function applyDelta(event) {
  if (event.sessionId !== state.sessionId || !event.turnId) return;
  const data = event.data ?? {};
  const iteration = typeof data.iteration === 'number' ? data.iteration : undefined;
  let entry = state.live.get(event.turnId);
  if (
    !entry ||
    entry.settled ||
    (iteration !== undefined && entry.iteration !== undefined && iteration !== entry.iteration)
  ) {
    entry = { iteration, text: '', reasoning: '', tools: new Map(), settled: false };
    state.live.set(event.turnId, entry);
  }
  const piece =
    typeof data.text === 'string' ? data.text : typeof data.delta === 'string' ? data.delta : '';
  if (event.type === 'output.message.delta') entry.text += piece;
  else if (event.type === 'reason.thinking.delta') entry.reasoning += piece;
  else if (event.type === 'tool.call.delta') {
    const id = String(data.toolCallId ?? data.id ?? 'call');
    const tool = entry.tools.get(id) ?? { name: '', arguments: '' };
    if (typeof data.toolName === 'string') tool.name = data.toolName;
    else if (typeof data.name === 'string') tool.name = data.name;
    const argumentsPiece = typeof data.argumentsDelta === 'string' ? data.argumentsDelta : piece;
    tool.arguments += argumentsPiece;
    entry.tools.set(id, tool);
  }
  const card = [...document.querySelectorAll('[data-testid=turn]')].find(
    (node) => node.dataset.turnId === event.turnId,
  );
  if (!card) {
    // The turn's card comes with the next render (its turn.started is on the way).
    scheduleRender(true);
    return;
  }
  const block = liveBlock(event.turnId);
  const shown = [...card.children].find((node) => node.dataset.testid === 'live');
  if (shown) shown.replaceWith(block);
  else card.append(block);
}

function toolCallTable(calls) {
  return h(
    'table',
    { dataset: { testid: 'tool-calls' } },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['tool', 'arguments', 'result', 'status', 'duration'].map((name) => h('th', {}, name)),
      ),
    ),
    h(
      'tbody',
      {},
      ...calls.map((call) =>
        h(
          'tr',
          { dataset: { testid: 'tool-call', toolName: call.name } },
          h('td', {}, h('code', {}, call.name), h('div', { class: 'muted mono' }, call.id)),
          h('td', {}, json(call.arguments)),
          h(
            'td',
            {},
            call.result === undefined
              ? h('span', { class: 'muted' }, 'no result yet')
              : h('pre', { class: call.isError ? 'error-text' : '' }, call.result),
          ),
          h(
            'td',
            {},
            call.status !== 'completed'
              ? badge(call.status, 'info')
              : call.isError
                ? badge('error', 'error')
                : badge('ok', 'ok'),
          ),
          h('td', {}, call.durationMs === undefined ? '' : `${call.durationMs} ms`),
        ),
      ),
    ),
  );
}

let contextShown = null;

/**
 * The context section of a turn. A finished turn's contexts do not change, so live re-renders
 * keep the section already shown (no reload, tabs and open details stay as they were).
 */
function shownContext(detail, sessionId, turnId) {
  const turn = detail.turns.find((entry) => entry.turnId === turnId);
  const key = `${sessionId}\n${turnId}\n${turn?.status ?? ''}`;
  if (contextShown?.key === key && turn && turn.status !== 'running') return contextShown.element;
  const element = contextSection(sessionId, turnId);
  contextShown = { key, element };
  return element;
}

function contextSection(sessionId, turnId) {
  const section = h(
    'section',
    { id: 'context', class: 'context', dataset: { testid: 'context' } },
    h('h2', {}, 'Context sent to the model'),
    h('p', { class: 'muted' }, 'Loading…'),
  );
  api(`sessions/${encodeURIComponent(sessionId)}/turns/${encodeURIComponent(turnId)}/context`)
    .then((view) => fillContext(section, turnId, view))
    .catch((error) => {
      section.replaceChildren(
        h('h2', {}, 'Context sent to the model'),
        h('p', { class: 'error-text' }, error.message),
      );
    });
  return section;
}

const SOURCE_NOTES = {
  recorded: 'Recorded as each reason step sent it.',
  runtime: "The turn's last reason step, as kept by the runtime (runtime.turnContext).",
  current:
    'Nothing was recorded for this turn (another process ran it, or it is still running): this is what the next reason step of the session would send (loadContext).',
};

function fillContext(section, turnId, view) {
  const body = h('div', {});
  const tabs = h('div', { class: 'tabs' });
  const show = (index) => {
    for (const [position, button] of [...tabs.children].entries()) {
      button.classList.toggle('selected', position === index);
    }
    body.replaceChildren(contextBody(view.contexts[index]));
  };
  view.contexts.forEach((context, index) => {
    tabs.append(
      h(
        'button',
        { type: 'button', onclick: () => show(index) },
        context.iteration ? `reason step ${context.iteration}` : 'next step',
      ),
    );
  });
  section.replaceChildren(
    h('h2', {}, 'Context sent to the model ', h('span', { class: 'muted mono' }, turnId)),
    h('p', { class: 'muted', dataset: { testid: 'context-source' } }, SOURCE_NOTES[view.source]),
    // replaceChildren would print a null as the text "null": a single step has no tabs.
    ...(view.contexts.length > 1 ? [tabs] : []),
    body,
  );
  show(view.contexts.length - 1);
}

function contextBody(context) {
  return h(
    'div',
    { dataset: { testid: 'context-body' } },
    h(
      'p',
      {},
      h('span', { class: 'muted' }, 'Model: '),
      h('code', { dataset: { testid: 'context-model' } }, context.model.model),
      ` (${context.model.providerType}) · max iterations ${context.maxIterations}`,
    ),
    context.compaction
      ? h(
          'p',
          { dataset: { testid: 'context-compaction' } },
          badge('compacted', 'info'),
          ` messages through #${context.compaction.throughSeq} are sent as the summary at the end of the system prompt`,
        )
      : null,
    h('h3', {}, 'System prompt'),
    h('pre', { dataset: { testid: 'system-prompt' } }, context.systemPrompt),
    context.capabilityPrompts.length > 0
      ? h(
          'p',
          { class: 'muted' },
          `Capability contributions: ${context.capabilityPrompts.map((entry) => entry.capabilityId).join(', ')}`,
        )
      : null,
    h('h3', {}, `Tools (${context.tools.length})`),
    ...context.tools.map((tool) =>
      h(
        'div',
        { class: 'tool', dataset: { testid: 'context-tool', toolName: tool.name } },
        h('code', {}, tool.name),
        ' ',
        mcpBadge(context, tool.name),
        h('span', { class: 'muted' }, tool.description),
        h('details', {}, h('summary', {}, 'input schema'), json(tool.inputSchema)),
      ),
    ),
    ...(context.mcpIssues ?? []).map((issue) =>
      h(
        'p',
        { class: 'muted', dataset: { testid: 'context-mcp-issue' } },
        `MCP ${issue.server}: ${issue.kind === 'unreachable' ? 'left out' : 'name clash'}: ${issue.message}`,
      ),
    ),
    h('h3', {}, `Messages (${context.messages.length})`),
    h(
      'table',
      { dataset: { testid: 'context-messages' } },
      h('tbody', {}, ...context.messages.map((message) => messageRow(message))),
    ),
    h('details', {}, h('summary', {}, 'Raw context (JSON)'), json(context)),
  );
}

/** A badge naming the MCP server (and its own tool name) of a context's tool; null for others. */
function mcpBadge(context, toolName) {
  const entry = (context.mcpTools ?? []).find((tool) => tool.name === toolName);
  if (!entry) return null;
  return h(
    'span',
    {
      class: 'badge',
      dataset: { testid: 'context-tool-mcp' },
      title: `tool ${entry.serverToolName} of MCP server ${entry.server}`,
    },
    `MCP ${entry.server}`,
  );
}

function messageRow(message) {
  return h(
    'tr',
    {},
    h('td', {}, h('span', { class: 'mono' }, `#${message.seq}`), ' ', badge(message.role)),
    h('td', {}, ...message.content.map((part) => contentPart(part))),
  );
}

/** Token usage in words, with cache and reasoning details when there are any. */
function usageText(usage) {
  const details = [
    usage.cachedInputTokens ? `${usage.cachedInputTokens} cached` : '',
    usage.cacheWriteInputTokens ? `${usage.cacheWriteInputTokens} cache-written` : '',
    usage.reasoningTokens ? `${usage.reasoningTokens} reasoning` : '',
  ].filter(Boolean);
  return `${usage.inputTokens} in / ${usage.outputTokens} out tokens${details.length > 0 ? ` (${details.join(', ')})` : ''}`;
}

function contentPart(part) {
  switch (part.type) {
    case 'text':
      return h('div', {}, part.text);
    case 'tool_call':
      return h(
        'div',
        {},
        badge('tool call', 'info'),
        ' ',
        h('code', {}, `${part.name}(${JSON.stringify(part.arguments)})`),
        h('span', { class: 'muted mono' }, ` ${part.id}`),
      );
    case 'tool_result':
      return h(
        'div',
        {},
        badge(part.isError ? 'tool error' : 'tool result', part.isError ? 'error' : 'ok'),
        h('span', { class: 'muted mono' }, ` ${part.toolCallId}`),
        h('pre', {}, part.content),
      );
    case 'reasoning':
      // Redacted reasoning is opaque data and a signature is a checksum: neither is shown.
      return h(
        'div',
        { dataset: { testid: 'reasoning-part' } },
        badge(part.redactedData !== undefined ? 'reasoning (redacted)' : 'reasoning', 'muted'),
        part.signature !== undefined ? h('span', { class: 'muted' }, ' signed') : null,
        part.redactedData !== undefined ? null : h('pre', { class: 'muted' }, part.text),
      );
    default:
      return json(part);
  }
}

function hostPlanSection(detail) {
  const section = h(
    'section',
    { dataset: { testid: 'host-plan' } },
    h('h2', {}, 'Host plan (planNextHostTurn)'),
  );
  if (detail.hostPlanError) {
    section.append(
      h(
        'p',
        { class: 'error-text' },
        `${detail.hostPlanError.code}: ${detail.hostPlanError.message}`,
      ),
    );
    return section;
  }
  const view = detail.hostPlan;
  if (!view) {
    section.append(h('p', { class: 'muted' }, 'No turn yet: a host would start with input.'));
    return section;
  }
  const plan = view.plan;
  const decision =
    plan.kind === 'complete'
      ? `complete (${plan.outcome.stopReason}${plan.outcome.success ? '' : ', failed'})`
      : plan.kind === 'scheduleAct'
        ? `scheduleAct: ${plan.act.toolCalls.map((call) => call.name).join(', ')}`
        : plan.kind === 'scheduleReason'
          ? `scheduleReason (iteration ${plan.state.iteration})`
          : plan.kind;
  const parts = [
    h(
      'p',
      {},
      'Replayed over the stored messages and events of turn ',
      h('code', {}, view.turnId),
      '. After ',
      h('strong', {}, view.completedActivity),
      ' the planner decides: ',
      h('strong', { dataset: { testid: 'plan-decision' } }, decision),
    ),
    view.inProgress ? h('p', {}, badge('now', 'info'), ' ', view.inProgress) : null,
    view.recordedEnd
      ? h(
          'p',
          { class: 'muted' },
          `Recorded end: ${view.recordedEnd.type}${view.recordedEnd.stopReason ? ` (${view.recordedEnd.stopReason})` : ''}.`,
        )
      : null,
    h(
      'ol',
      { class: 'steps' },
      ...view.steps.map((step) =>
        h(
          'li',
          {},
          `after ${step.completedActivity}: `,
          h('code', {}, step.decision),
          ` · ${step.summary}`,
        ),
      ),
    ),
    h(
      'details',
      { dataset: { key: 'host-plan-call' } },
      h('summary', {}, 'Arguments and result of the last call'),
      h('h3', {}, 'state'),
      json(view.state),
      h('h3', {}, 'output'),
      json(view.output),
      h('h3', {}, `pendingUserMessages: ${view.pendingUserMessages}`),
      h('h3', {}, 'plan'),
      json(view.plan),
    ),
  ];
  section.append(...parts.filter(Boolean));
  return section;
}

function timelineSection(detail) {
  return h(
    'section',
    { dataset: { testid: 'timeline' } },
    h('h2', {}, `Timeline (${detail.messages.length} messages, ${detail.events.length} events)`),
    h('ol', { class: 'timeline' }, ...detail.timeline.map((entry) => timelineRow(entry))),
  );
}

function timelineRow(entry) {
  if (entry.kind === 'message') {
    const message = entry.message;
    const summary = message.content
      .map((part) =>
        part.type === 'text'
          ? part.text
          : part.type === 'reasoning'
            ? part.redactedData !== undefined
              ? '(reasoning, redacted)'
              : `(reasoning) ${part.text}`
            : part.type === 'tool_call'
              ? `→ ${part.name}(${JSON.stringify(part.arguments)})`
              : part.type === 'tool_result'
                ? `${part.isError ? '✗' : '←'} ${part.content}`
                : `[${part.type}]`,
      )
      .join(' ');
    return h(
      'li',
      { class: 'kind-message', dataset: { testid: 'timeline-entry', kind: 'message' } },
      h('span', { class: 'mono muted' }, time(entry.at)),
      h('span', { class: 'what' }, `message #${message.seq} `, badge(message.role)),
      h('span', {}, summary),
    );
  }
  const event = entry.event;
  return h(
    'li',
    {
      class: event.type === 'context.compacted' ? 'kind-event compaction' : 'kind-event',
      dataset: { testid: 'timeline-entry', kind: 'event', eventType: event.type },
    },
    h('span', { class: 'mono muted' }, time(entry.at)),
    h('span', { class: 'what mono' }, event.type),
    h(
      'details',
      { dataset: { key: `event:${event.id}` } },
      h('summary', { class: 'muted' }, eventSummary(event)),
      json(event),
    ),
  );
}

/** One line about a compaction point (a turn's or a `context.compacted` event's data). */
function compactionText(point) {
  const tokens =
    typeof point.tokensBefore === 'number' && typeof point.tokensAfter === 'number'
      ? ` · ${point.tokensBefore} → ${point.tokensAfter} tokens`
      : '';
  return `history through message #${point.throughSeq} summarised${tokens}`;
}

function eventSummary(event) {
  const data = event.data;
  switch (event.type) {
    case 'context.compacted':
      return compactionText(data);
    case 'tool.started':
      return `${data.toolName} (${data.toolCallId})`;
    case 'tool.completed':
      return `${data.toolName}: ${data.isError ? 'error' : 'ok'} in ${data.durationMs} ms`;
    case 'reason.started':
      return `iteration ${data.iteration} · ${data.model}`;
    case 'reason.completed':
      return `iteration ${data.iteration} · ${data.success ? `${data.toolCalls ?? 0} tool call(s)` : 'failed'}`;
    case 'turn.completed':
    case 'turn.failed':
      return `${data.stopReason} · ${data.iterations} iteration(s)`;
    case 'approval.requested':
      return `${data.operation} ${data.path}`;
    case 'approval.decided':
      return `${data.decision}: ${data.operation} ${data.path}`;
    case 'output.message.completed':
      return `message #${data.seq}${data.toolCalls ? ` · ${data.toolCalls} tool call(s)` : ''}`;
    case 'input.message':
      return `message #${data.seq}`;
    default:
      return `#${event.seq}`;
  }
}

function filesSection(detail) {
  if (detail.filesError) {
    return h(
      'section',
      {},
      h('h2', {}, 'Workspace'),
      h('p', { class: 'error-text' }, detail.filesError.message),
    );
  }
  return h(
    'section',
    { dataset: { testid: 'files' } },
    h('h2', {}, `Workspace (${detail.files.length})`),
    detail.files.length === 0 ? h('p', { class: 'muted' }, 'No files.') : null,
    h(
      'ul',
      {},
      ...detail.files.map((file) =>
        h(
          'li',
          { dataset: { testid: 'file', path: file.path } },
          h('code', {}, file.path),
          file.isDirectory ? ' /' : h('span', { class: 'muted' }, ` ${file.size} bytes`),
        ),
      ),
    ),
  );
}

let renderTimer = null;
let renderSession = false;

/**
 * Re-renders soon, once for a burst of events: the shown session too when `session` is set,
 * else only the session list.
 */
function scheduleRender(session) {
  if (session) renderSession = true;
  if (renderTimer !== null) return;
  renderTimer = setTimeout(() => {
    renderTimer = null;
    const whole = renderSession;
    renderSession = false;
    (whole ? render() : loadSessions()).catch(() => undefined);
  }, RENDER_DEBOUNCE_MS);
}

function keptEvent(event) {
  if (event.sessionId !== state.sessionId) {
    scheduleRender(false);
    return;
  }
  if (SETTLING_TYPES.has(event.type) && event.turnId) {
    const entry = state.live.get(event.turnId);
    if (entry) entry.settled = true;
  }
  scheduleRender(true);
}

function setLiveStatus(status) {
  const element = document.getElementById('live');
  element.dataset.testid = 'live-status';
  element.dataset.status = status;
  const words = {
    live: 'live',
    connecting: 'connecting…',
    reconnecting: 'reconnecting…',
    off: 'manual refresh',
  };
  element.textContent = words[status];
  element.className = `badge ${status === 'live' ? 'ok' : status === 'off' ? '' : 'warn'}`;
  element.title =
    status === 'off'
      ? 'This source cannot follow sessions live: use Refresh'
      : 'Following sessions as they run (/api/events)';
  // Refresh stays as the fallback while the stream is down or unavailable.
  document.getElementById('refresh').hidden = status === 'live';
}

/** Follows every session over /api/events; the browser reconnects by itself. */
function follow() {
  setLiveStatus('connecting');
  const events = new EventSource('api/events');
  events.addEventListener('ready', () => {
    setLiveStatus('live');
    // Whatever happened before the subscription (or while disconnected) is fetched now.
    scheduleRender(true);
  });
  events.addEventListener('error', () => {
    if (events.readyState !== EventSource.OPEN) setLiveStatus('reconnecting');
  });
  events.addEventListener('message', (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (event.ephemeral === true || DELTA_TYPES.has(event.type)) applyDelta(event);
    else keptEvent(event);
  });
}

async function start() {
  document.getElementById('refresh').addEventListener('click', () => render());
  window.addEventListener('hashchange', () => render());
  await loadInfo();
  if (state.info.live) follow();
  else setLiveStatus('off');
  if (!location.hash) {
    const sessions = await api('sessions');
    if (sessions[0]) {
      location.hash = sessionHref(sessions[0].id);
      return;
    }
  }
  await render();
}

start().catch((error) => {
  document.getElementById('main').replaceChildren(h('p', { class: 'error-text' }, error.message));
});
