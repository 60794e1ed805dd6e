// Setting: every setting Shorthorn knows, with its stored value (or its default) and its definition;
// queries settings(category) and setting(name).
import type { Setting } from '../model/setting.js';
import { SETTING_DEFINITIONS, type SettingDefinition } from '../model/setting-definitions.js';
import { builder } from './builder.js';

interface SettingView {
  name: string;
  stored: Setting | undefined;
  definition: SettingDefinition | undefined;
}

const definitionOf = (name: string): SettingDefinition | undefined =>
  Object.hasOwn(SETTING_DEFINITIONS, name) ? SETTING_DEFINITIONS[name as keyof typeof SETTING_DEFINITIONS] : undefined;

const SettingDefinitionRef = builder.objectRef<SettingDefinition>('SettingDefinition').implement({
  description: 'What a setting means and which values it takes',
  fields: (t) => ({
    displayName: t.exposeString('displayName'),
    description: t.exposeString('description'),
    category: t.exposeString('category'),
    type: t.string({ description: 'bool, int, string or enum', resolve: (d) => d.type }),
    default: t.exposeString('default'),
    choices: t.stringList({ nullable: true, resolve: (d) => (d.choices ? [...d.choices] : null) }),
    min: t.int({ nullable: true, resolve: (d) => d.min ?? null }),
    max: t.int({ nullable: true, resolve: (d) => d.max ?? null }),
    readOnly: t.boolean({ resolve: (d) => d.readOnly ?? false }),
  }),
});

export const SettingRef = builder.objectRef<SettingView>('Setting').implement({
  description: 'A global setting (Longhorn Setting): its value, the stored one or else the default',
  fields: (t) => ({
    name: t.exposeString('name'),
    value: t.string({ resolve: (s) => s.stored?.spec.value ?? s.definition?.default ?? '' }),
    isDefault: t.boolean({
      description: 'No value is stored: the default applies',
      resolve: (s) => s.stored === undefined,
    }),
    applied: t.boolean({ resolve: (s) => s.stored?.status.applied ?? false }),
    definition: t.field({
      type: SettingDefinitionRef,
      nullable: true,
      description: 'Null for a stored setting this version does not know',
      resolve: (s) => s.definition ?? null,
    }),
  }),
});

builder.queryFields((t) => ({
  settings: t.field({
    type: [SettingRef],
    description: 'Every known setting (and any unknown stored one), by name; filtered by category or name substring',
    authScopes: { viewer: true },
    args: { category: t.arg.string({ required: false }), name: t.arg.string({ required: false }) },
    resolve: async (_root, args, ctx) => {
      const stored = new Map((await ctx.reads.list('Setting')).map((s) => [s.metadata.name, s]));
      const names = [...new Set([...Object.keys(SETTING_DEFINITIONS), ...stored.keys()])].sort();
      return names
        .map((name) => ({ name, stored: stored.get(name), definition: definitionOf(name) }))
        .filter(
          (s) =>
            (!args.category || s.definition?.category === args.category) && (!args.name || s.name.includes(args.name)),
        );
    },
  }),
  setting: t.field({
    type: SettingRef,
    nullable: true,
    authScopes: { viewer: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, { name }, ctx) => {
      const stored = await ctx.reads.get('Setting', name);
      const definition = definitionOf(name);
      return stored || definition ? { name, stored, definition } : null;
    },
  }),
}));
