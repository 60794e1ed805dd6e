// Whole-result cache for queries, for dashboards: many clients asking the same question between two
// changes get the one answer computed once. An entry is valid for one generation of the read model (any
// change to any resource ends it), and is keyed by the parsed document (yoga caches parsing, so the
// same query text is the same object), the variables, the operation name and the caller's role (what
// a role may see differs). Mutations, subscriptions and results with errors are never cached.
import type { DocumentNode, ExecutionResult, OperationDefinitionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { GraphQLContext } from '../schema/context.js';
import type { ReadModel } from './read-model.js';

const MAX_ENTRIES_PER_DOCUMENT = 64;

interface Entry {
  generation: number;
  result: ExecutionResult;
}

function isQuery(doc: DocumentNode, operationName: string | null | undefined): boolean {
  const ops = doc.definitions.filter((d): d is OperationDefinitionNode => d.kind === 'OperationDefinition');
  const op = operationName ? ops.find((o) => o.name?.value === operationName) : ops.length === 1 ? ops[0] : undefined;
  return op?.operation === 'query';
}

export function useResponseCache(model: ReadModel): Plugin<GraphQLContext> {
  const byDocument = new WeakMap<DocumentNode, Map<string, Entry>>();
  return {
    onExecute({ args, setResultAndStopExecution }) {
      if (!isQuery(args.document, args.operationName)) return;
      const generation = model.generation;
      const key = `${args.contextValue.role ?? ''}|${args.operationName ?? ''}|${JSON.stringify(args.variableValues ?? {})}`;
      let entries = byDocument.get(args.document);
      const hit = entries?.get(key);
      if (hit && hit.generation === generation) {
        setResultAndStopExecution(hit.result);
        return;
      }
      return {
        onExecuteDone({ result }) {
          // Computed against the generation it started in: a change meanwhile makes it stale at once.
          if (Symbol.asyncIterator in result || result.errors?.length) return;
          if (!entries) {
            entries = new Map();
            byDocument.set(args.document, entries);
          }
          if (entries.size >= MAX_ENTRIES_PER_DOCUMENT) entries.clear();
          entries.set(key, { generation, result });
        },
      };
    },
  };
}
