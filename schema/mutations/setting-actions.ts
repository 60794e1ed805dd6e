// Setting mutation (admin): the value is checked against the setting's definition (type, range, choices).
import { SETTING_DEFINITIONS } from '../../model/setting-definitions.js';
import { builder } from '../builder.js';
import { API_ERRORS } from '../errors.js';
import { SettingRef } from '../setting.js';

builder.mutationFields((t) => ({
  updateSetting: t.field({
    type: SettingRef,
    authScopes: { admin: true },
    errors: { types: API_ERRORS, directResult: true },
    args: { name: t.arg.string({ required: true }), value: t.arg.string({ required: true }) },
    resolve: async (_root, { name, value }, ctx) => {
      const stored = await ctx.api.updateSetting(name, value);
      return { name, stored, definition: SETTING_DEFINITIONS[name as keyof typeof SETTING_DEFINITIONS] };
    },
  }),
}));
