// Reading settings in controllers: the stored value when it is valid, else the definition's default
// (a bad value written around the API must not stop the control plane).

import type { Setting } from '../model/setting.js';
import { SETTING_DEFINITIONS, type SettingName, settingValueProblem } from '../model/setting-definitions.js';

export interface SettingSource {
  get(name: string): Setting | undefined;
}

export class Settings {
  constructor(private readonly source: SettingSource) {}

  raw(name: SettingName): string {
    const v = this.source.get(name)?.spec.value;
    return v !== undefined && settingValueProblem(name, v) === undefined ? v : SETTING_DEFINITIONS[name].default;
  }

  bool(name: SettingName): boolean {
    return this.raw(name) === 'true';
  }

  int(name: SettingName): number {
    return Number(this.raw(name));
  }

  /** Every setting by name, for the scheduler's schedulingSettingsFrom. */
  all(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of Object.keys(SETTING_DEFINITIONS) as SettingName[]) out[name] = this.raw(name);
    return out;
  }
}
