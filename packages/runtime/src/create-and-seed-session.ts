import {
  type Agent,
  EverrunsError,
  foldOverlay,
  type InitialFile,
  type RuntimeBackends,
  type Session,
  type SessionFileSystemFactory,
} from '@everruns-ts/core';

/**
 * Stores a session and seeds its workspace: the initial files of its overlay (harness chain,
 * agent, session, folded), then `seeds`. Throws `HARNESS_NOT_FOUND`, `AGENT_NOT_FOUND`,
 * `DUPLICATE_ID`.
 */
export async function createAndSeedSession(
  backends: RuntimeBackends,
  fileSystems: SessionFileSystemFactory,
  session: Session,
  seeds: InitialFile[],
): Promise<Session> {
  const chain = await backends.harnesses.getHarnessChain(session.harnessId);
  let agent: Agent | null = null;
  if (session.agentId) {
    agent = await backends.agents.getAgent(session.agentId);
    if (!agent) {
      throw new EverrunsError({
        code: 'AGENT_NOT_FOUND',
        message: `Agent ${session.agentId} does not exist`,
        details: { agentId: session.agentId },
      });
    }
  }
  const created = await backends.sessions.createSession(session);
  const overlay = foldOverlay(chain, agent, created);
  const fileSystem = await fileSystems.forSession(created.id);
  for (const file of overlay.initialFiles) await fileSystem.seedInitialFile(file);
  // Seeds come from the embedder, not the model: placed like initial files, never gated.
  for (const file of seeds) await fileSystem.seedInitialFile({ ...file, isReadonly: false });
  return created;
}
