// `shorthorn setting ls|get|set`: global settings through the GraphQL API.
import type { Command } from 'commander';
import { action, addClientOptions, CliError, ERROR_FIELDS, type Result, show, unwrap } from './graphql-client.js';
import { formatTable } from './table.js';

const SETTING_FIELDS = `name value isDefault applied
  definition { displayName description category type default choices min max readOnly }`;

interface SettingView {
  name: string;
  value: string;
  isDefault: boolean;
  applied: boolean;
  definition: {
    displayName: string;
    description: string;
    category: string;
    type: string;
    default: string;
    choices: string[] | null;
    min: number | null;
    max: number | null;
    readOnly: boolean;
  } | null;
}

const LIST = `query Settings($category: String, $name: String) {
  settings(category: $category, name: $name) { ${SETTING_FIELDS} }
}`;
const GET = `query Setting($name: String!) { setting(name: $name) { ${SETTING_FIELDS} } }`;
const SET = `mutation UpdateSetting($name: String!, $value: String!) {
  result: updateSetting(name: $name, value: $value) { ${ERROR_FIELDS} ... on Setting { ${SETTING_FIELDS} } }
}`;

function settingTable(settings: SettingView[]): string {
  return formatTable(
    ['name', 'value', 'default', 'category', 'type'],
    settings.map((s) => [
      s.name,
      s.value,
      s.definition?.default ?? '',
      s.definition?.category ?? '(unknown)',
      s.definition
        ? s.definition.type === 'enum' && s.definition.choices
          ? s.definition.choices.join('|')
          : s.definition.type
        : '',
    ]),
  );
}

export function registerSettingCommand(program: Command): void {
  const setting = addClientOptions(program.command('setting').description('global settings through the GraphQL API'));

  setting
    .command('ls')
    .description('every setting with its value')
    .option('--category <category>', 'only this category')
    .option('--name <substring>', 'only names containing this')
    .action(
      action(async (c, opts) => {
        const { settings } = await c.request<{ settings: SettingView[] }>(LIST, {
          category: opts['category'],
          name: opts['name'],
        });
        show(opts, settings, () => settingTable(settings));
      }),
    );

  setting
    .command('get <name>')
    .description('one setting, with its description')
    .action(
      action(async (c, opts, name: string) => {
        const { setting: s } = await c.request<{ setting: SettingView | null }>(GET, { name });
        if (!s) throw new CliError('NotFound', `setting "${name}" not found`);
        show(opts, s, () =>
          [
            settingTable([s]),
            ...(s.definition ? ['', `${s.definition.displayName}: ${s.definition.description}`] : []),
          ].join('\n'),
        );
      }),
    );

  setting
    .command('set <name> <value>')
    .description('change a setting (checked against its definition)')
    .action(
      action(async (c, opts, name: string, value: string) => {
        const { result } = await c.request<{ result: Result<SettingView> }>(SET, { name, value });
        const s = unwrap(result);
        show(opts, s, () => `setting ${s.name} = ${s.value}`);
      }),
    );
}
