; UNTESTED (see build-installer.ps1). Inno Setup 6 script: installs the wheels, then
; builds the environment at {app}\venv with the Python found on the machine.
#ifndef Version
  #define Version "0.0.0"
#endif
[Setup]
AppName=moorage
AppVersion={#Version}
DefaultDirName={autopf}\moorage
OutputBaseFilename=moorage-{#Version}-setup
PrivilegesRequired=admin
ArchitecturesInstallIn64BitMode=x64

[Files]
Source: "{#Wheels}\*.whl"; DestDir: "{app}\wheels"

[Run]
Filename: "py"; Parameters: "-3 -m venv ""{app}\venv"""; Flags: runhidden
Filename: "{app}\venv\Scripts\pip.exe"; Parameters: "install --no-index --no-deps ""{app}\wheels\*.whl"""; Flags: runhidden

[Icons]
Name: "{autoprograms}\moorage"; Filename: "{app}\venv\Scripts\moorage.exe"; Parameters: "tray"
Name: "{autostartup}\moorage tray"; Filename: "{app}\venv\Scripts\moorage.exe"; Parameters: "tray"

[UninstallDelete]
Type: filesandordirs; Name: "{app}\venv"
